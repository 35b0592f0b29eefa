"""pyshm's API: ShareMem, shm.mempool.Mempool, shm.ring.Ring, across fork."""

import doctest
import os
import signal
import struct
import time
import traceback

import pytest

import shm
from shm import ShareMem, mempool, ring


def fork_run(fn):
    """Runs `fn()` in a forked child, which exits with its result (0 when
    None, 1 on an exception) and never returns into pytest."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = fn() or 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def wait_ok(pid):
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_fifo_order():
    mp = mempool.Mempool(4, 8)
    held = [mp.get() for _ in range(4)]
    assert [b.index for b in held] == [0, 1, 2, 3]
    for i in (2, 0, 3, 1):
        mp.put(held[i])
    # First in, first out: in the order they were given back.
    assert [mp.get().index for _ in range(4)] == [2, 0, 3, 1]


def test_fifo_order_exact():
    mp = mempool.Mempool(3, 8)
    x, y, z = mp.get(), mp.get(), mp.get()
    mp.put(z)
    mp.put(x)
    first, second = mp.get(), mp.get()
    assert (first.index, second.index) == (2, 0)
    with pytest.raises(shm.PoolEmpty):
        mp.get()


def test_pool_empty_error_names():
    mp = mempool.Mempool(1, 8)
    held = mp.get()
    with pytest.raises(mempool.EmptyError) as info:
        mp.get()
    assert isinstance(info.value, shm.RingEmpty)
    assert isinstance(info.value, shm.ShmError)
    assert "every block of the pool is taken" in str(info.value)
    mp.put(held)
    assert mp.free_count == 1


def test_block_is_a_writable_buffer():
    mp = mempool.Mempool(2, 16)
    buf = mp.get()
    assert len(buf) == 16 and mp.block_size == 64
    struct.pack_into("=qq", buf, 0, -1, 7)
    assert struct.unpack_from("=qq", buf) == (-1, 7)
    buf[0:3] = b"abc"
    buf[15] = 9
    assert buf[0:3] == b"abc" and buf[15] == 9
    view = memoryview(buf)
    assert not view.readonly and view.nbytes == 16
    with pytest.raises(BufferError):
        mp.put(buf)
    view.release()
    assert buf.tobytes()[:3] == b"abc"
    mp.put(buf)
    assert not buf.held
    with pytest.raises(ValueError, match="given back"):
        bytes(buf[0:1])


def test_numpy_view_keeps_block():
    np = pytest.importorskip("numpy")
    mp = mempool.Mempool(1, 64)
    buf = mp.get()
    arr = np.frombuffer(buf, dtype=np.int64)
    arr[:] = np.arange(8)
    assert struct.unpack_from("=q", buf, 56) == (7,)
    with pytest.raises(BufferError, match="memoryview"):
        mp.put(buf)
    del arr
    mp.put(buf)


def test_dropped_block_goes_back():
    mp = mempool.Mempool(2, 8)
    mp.get()  # dropped at once
    assert mp.free_count == 2
    assert mp.check() == 2


def test_ring_empty_and_full():
    mp = mempool.Mempool(4, 8)
    r = ring.Ring(2)
    assert r.count == 2 and len(r) == 0
    with pytest.raises(shm.RingEmpty, match="empty"):
        r.dequeue()
    with pytest.raises(ring.EmptyError):
        r.dequeue(8)
    r.enqueue(mp.get())
    r.enqueue(mp.get())
    assert (r.used_count, r.free_count) == (2, 0)
    extra = mp.get()
    with pytest.raises(shm.RingFull, match="full"):
        r.enqueue(extra)
    with pytest.raises(ring.FullError):
        r.enqueue(extra)
    # The block stays the caller's.
    assert extra.held
    struct.pack_into("=i", extra, 0, 5)
    mp.put(extra)
    assert r.dequeue().index == 0
    assert r.dequeue().index == 1


def test_ring_count_rounds_up():
    assert ring.Ring(3).count == 4
    assert ring.Ring(1).count == 1


def test_one_ring_many_pools():
    small, large = mempool.Mempool(4, 8), mempool.Mempool(4, 256)
    r = ring.Ring(8)  # a ring and pools in mappings of their own
    for i in range(4):
        block = (small if i % 2 else large).get()
        struct.pack_into("=i", block, 0, i)
        r.enqueue(block)
    got = [r.dequeue() for _ in range(4)]
    assert [struct.unpack_from("=i", b)[0] for b in got] == [0, 1, 2, 3]
    assert [len(b) for b in got] == [256, 8, 256, 8]
    for i, b in enumerate(got):
        (small if i % 2 else large).put(b)
    assert small.free_count == 4 and large.free_count == 4


def test_dequeue_size():
    mp = mempool.Mempool(2, 8)
    r = ring.Ring(4)
    buf = mp.get()
    struct.pack_into("=i", buf, 0, 1234)
    r.enqueue(buf)
    assert not buf.held
    got = r.dequeue(4)  # pyshm's dequeue(size)
    assert len(got) == 4 and struct.unpack_from("=i", got) == (1234,)
    r.enqueue(got)
    assert len(r.dequeue(64)) == 64  # up to the real block size
    r.enqueue(mp.get())
    with pytest.raises(ValueError, match="larger than the block"):
        r.dequeue(65)
    assert mp.free_count == 2  # the refused block went back, as did the dropped one
    with pytest.raises(ValueError, match="negative"):
        r.dequeue(-1)


def test_bad_input():
    for count, size in ((0, 4), (4, 0), (-1, 4), (4, -5), (1 << 40, 4), (1 << 31, (1 << 32) - 1)):
        with pytest.raises(ValueError):
            mempool.Mempool(count, size)
    with pytest.raises(ValueError):
        ring.Ring(0)
    with pytest.raises(ValueError, match="ShareMem size"):
        ShareMem(100)
    with pytest.raises(TypeError):
        mempool.Mempool(4, 4, shm=b"not a ShareMem")


def test_foreign_block_and_double_put():
    a, b = mempool.Mempool(2, 8), mempool.Mempool(2, 8)
    buf = a.get()
    with pytest.raises(ValueError, match="another pool"):
        b.put(buf)
    assert buf.held  # still a's
    a.put(buf)
    with pytest.raises(ValueError, match="given back"):
        a.put(buf)
    with pytest.raises(TypeError, match="expected a block"):
        a.put(bytearray(8))
    with pytest.raises(TypeError, match="expected a block"):
        ring.Ring(2).enqueue(bytearray(8))
    r = ring.Ring(2)
    with pytest.raises(ValueError, match="given back"):
        r.enqueue(buf)
    assert a.free_count == 2 and b.free_count == 2


def test_cleanup():
    mem = ShareMem(1 << 16)
    free0 = mem.free
    mp = mempool.Mempool(4, 64, shm=mem)
    r = ring.Ring(4, shm=mem)
    assert mem.free < free0
    buf = mp.get()
    mp.cleanup()
    with pytest.raises(ValueError, match="cleaned-up"):
        mp.get()
    # The block keeps the pool's memory until it goes.
    struct.pack_into("=i", buf, 0, 1)
    del buf
    r.cleanup()
    assert mem.free == free0
    # The space is reused.
    for _ in range(50):
        with mempool.Mempool(8, 256, shm=mem) as pool:
            pool.get()
    assert mem.free == free0
    view = mem.buf
    with pytest.raises(BufferError):
        mem.cleanup()
    view.release()
    mem.cleanup()
    assert mem.closed
    with pytest.raises(ValueError, match="cleaned-up"):
        mempool.Mempool(1, 1, shm=mem)


def test_sharemem_no_room():
    mem = ShareMem(4096 + 4096)
    with pytest.raises(shm.ShmError, match="no room"):
        mempool.Mempool(64, 1024, shm=mem)


def test_sharemem_buf_shared_across_fork():
    mem = ShareMem(8192)
    view = mem.buf

    def child():
        view[5000] = 42

    wait_ok(fork_run(child))
    assert view[5000] == 42
    view.release()


def test_blocks_across_fork_both_ways():
    mem = ShareMem(1 << 20)
    mp = mempool.Mempool(8, 32, shm=mem)
    to_child, to_parent = ring.Ring(8, shm=mem), ring.Ring(8, shm=mem)
    buf = mp.get()
    buf[0:5] = b"hello"
    to_child.enqueue(buf)

    def child():
        got = None
        while got is None:
            try:
                got = to_child.dequeue()
            except ring.EmptyError:
                time.sleep(0.001)
        assert got.tobytes()[:5] == b"hello"
        got[0:5] = b"world"
        to_parent.enqueue(got)  # the same block goes back
        mine = mp.get()
        mine[0:3] = b"new"
        to_parent.enqueue(mine)

    wait_ok(fork_run(child))
    first, second = to_parent.dequeue(), to_parent.dequeue()
    assert first.tobytes()[:5] == b"world" and first.index == buf.index
    assert second.tobytes()[:3] == b"new"
    mp.put(first)
    mp.put(second)
    assert mp.free_count == 8 and mp.check() == 8


def test_producer_consumer_across_fork():
    n = 20000
    mem = ShareMem(4 << 20)
    mp = mempool.Mempool(64, 16, shm=mem)
    r = ring.Ring(32, shm=mem)

    def producer():
        for i in range(n):
            while True:
                try:
                    buf = mp.get()
                    break
                except mempool.EmptyError:
                    time.sleep(0)
            struct.pack_into("=qq", buf, 0, i, i * 3)
            while True:
                try:
                    r.enqueue(buf)
                    break
                except ring.FullError:
                    time.sleep(0)

    pid = fork_run(producer)
    for i in range(n):
        while True:
            try:
                buf = r.dequeue(16)
                break
            except ring.EmptyError:
                time.sleep(0)
        assert struct.unpack_from("=qq", buf) == (i, i * 3)
        mp.put(buf)
    wait_ok(pid)
    assert len(r) == 0
    assert mp.free_count == 64 and mp.check() == 64


def test_kill_9_child_holding_blocks():
    mp = mempool.Mempool(8, 64)
    rfd, wfd = os.pipe()

    def child():
        held = [mp.get() for _ in range(3)]
        os.write(wfd, b"x")
        time.sleep(60)
        del held

    pid = fork_run(child)
    os.close(wfd)
    try:
        assert os.read(rfd, 1) == b"x"
        assert mp.free_count == 5
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(rfd)
    assert sorted(mp.reclaim()) == [0, 1, 2]
    assert mp.free_count == 8 and mp.check() == 8
    assert [mp.get().index for _ in range(1)] == [3]  # FIFO: the untouched ones first


def test_inherited_block_is_inert_in_child():
    mp = mempool.Mempool(2, 8)
    buf = mp.get()
    buf[0] = 7

    def child():
        with pytest.raises(shm.ShmError, match="before fork"):
            memoryview(buf)
        with pytest.raises(shm.ShmError, match="before fork"):
            mp.put(buf)
        with pytest.raises(shm.ShmError, match="before fork"):
            ring.Ring(2).enqueue(buf)
        mine = mp.get()  # the pool itself works in the child
        assert mine.index == 1

    wait_ok(fork_run(child))
    assert buf[0] == 7 and buf.held  # still the parent's
    mp.put(buf)
    assert mp.check() == 2


def test_unknown_pool_tag():
    mem = ShareMem(1 << 20)
    r = ring.Ring(4, shm=mem)

    def child():
        late = mempool.Mempool(2, 8, shm=mem)  # made after fork: not the parent's
        r.enqueue(late.get())

    wait_ok(fork_run(child))
    with pytest.raises(shm.ShmError, match="does not have"):
        r.dequeue()


def test_hostile_ring_entries_are_refused():
    """Whatever a peer writes into the ring's entries, dequeue raises; it
    never touches memory outside the pool."""
    mem = ShareMem(1 << 16)
    mp = mempool.Mempool(16, 8, shm=mem)
    r = ring.Ring(4, shm=mem)
    r.enqueue(mp.get())  # the first operations claim lanes: done with them
    r.dequeue()
    held = [mp.get() for _ in range(6)]
    view = mem.buf.cast("Q")

    def enqueue_and_find(block):
        before = view.tolist()
        r.enqueue(block)
        changed = [(i, w) for i, (v, w) in enumerate(zip(before, view.tolist())) if v != w]
        # The entry: pool tag (high 32 bits, never 0) and block index.
        (found,) = [(i, w >> 32) for i, w in changed if w & 0xFFFFFFFF == block.index and w >> 32]
        return found

    cases = [
        (lambda tag: (tag << 32) | 1_000_000, "out of range"),  # no such block
        (lambda tag: (tag << 32) | 15, "free"),  # free, not in transit
        (lambda tag: (tag << 32) | held[0].index, "held"),  # a block someone holds
        (lambda tag: ((tag ^ 0x5A5A5A5A) << 32) | 5, "does not have"),  # no such pool
    ]
    for forge, message in cases:
        at, tag = enqueue_and_find(mp.get())
        view[at] = forge(tag)
        with pytest.raises(shm.ShmError, match=message):
            r.dequeue()
    # The ring still works; the four blocks whose entries were overwritten
    # stay in transit (nobody will claim them), the rest come back.
    block = mp.get()
    r.enqueue(block)
    assert r.dequeue().index == block.index
    assert held[0].held  # the forged claim of a held block changed nothing
    view.release()
    del held, block
    assert mp.free_count == 16 - 4


def test_pools_made_after_fork_do_not_overlap():
    mem = ShareMem(1 << 20)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def child():
        pool = mempool.Mempool(16, 256, shm=mem)
        held = [pool.get() for _ in range(16)]
        for b in held:
            b[0:256] = b"\xaa" * 256
        os.write(ready_w, b"x")
        assert os.read(go_r, 1) == b"x"
        assert all(b.tobytes() == b"\xaa" * 256 for b in held)

    pid = fork_run(child)
    try:
        assert os.read(ready_r, 1) == b"x"
        pool = mempool.Mempool(16, 256, shm=mem)
        r = ring.Ring(64, shm=mem)
        held = [pool.get() for _ in range(16)]
        for b in held:
            b[0:256] = b"\x55" * 256
        for b in held:
            r.enqueue(b)
        os.write(go_w, b"x")
    finally:
        wait_ok(pid)
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)


def doc_examples():
    objs = [ShareMem, mempool.Mempool, mempool.MempoolBlock, ring.Ring]
    for obj in objs:
        yield f"{obj.__name__}", obj.__doc__
        for name, attr in vars(obj).items():
            doc = getattr(attr, "__doc__", None)
            if doc and ">>>" in doc and not name.startswith("__"):
                yield f"{obj.__name__}.{name}", doc


@pytest.mark.parametrize("name,doc", list(doc_examples()))
def test_docstring_examples(name, doc):
    parser = doctest.DocTestParser()
    test = parser.get_doctest(doc, {}, name, None, 0)
    assert test.examples, name
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    me = os.getpid()
    runner.run(test)
    assert os.getpid() == me  # no forked example returned here
    assert runner.failures == 0, name
