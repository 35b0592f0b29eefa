"""shm.SpscRing and shm.MpmcRing in one process: layouts, dtypes, errors,
RingFull/None semantics, bulk calls with numpy and unaligned buffers,
chunks, blocking calls and Ctrl-C."""

import gc
import os
import signal
import threading
import time

import numpy as np
import pytest

import shm
from ring_helpers import name, name_factory  # noqa: F401 (fixtures)

POINT = np.dtype([("x", "<u4"), ("y", "<f4")], align=True)


def exists(n):
    return os.path.exists("/dev/shm" + n)


def test_push_pop_none_and_full(name):
    ring = shm.SpscRing.create(name, 4, dtype="u8")
    tx = ring.producer()
    rx = shm.SpscRing.attach(name, dtype="u8").consumer()
    assert rx.pop() is None
    for i in range(4):
        tx.push(i)
    with pytest.raises(shm.RingFull, match=name):
        tx.push(4)
    assert len(ring) == 4 and tx.free == 0 and rx.available == 4
    assert [rx.pop() for _ in range(5)] == [0, 1, 2, 3, None]
    assert tx.position == rx.position == 4
    tx.push(2**64 - 1)
    assert rx.pop() == 2**64 - 1
    with pytest.raises(OverflowError):
        tx.push(2**64)
    with pytest.raises(OverflowError):
        tx.push(-1)


def test_default_dtype_is_u8_and_repr(name):
    ring = shm.SpscRing.create(name, 8)
    assert ring.itemsize == 8 and ring.dtype == np.dtype("u8") and ring.capacity == 8
    assert ring.name == name and name in repr(ring)


@pytest.mark.parametrize(
    "dtype,values",
    [
        ("u1", [0, 255]),
        ("i1", [-128, 127]),
        ("u2", [0, 65535]),
        ("i2", [-5, 7]),
        ("u4", [2**32 - 1]),
        ("i4", [-(2**31)]),
        ("i8", [-(2**63), 2**63 - 1]),
        ("f4", [1.5, -0.25]),
        ("f8", [3.141592653589793, float("inf")]),
        ("?", [True, False]),
    ],
)
def test_scalar_dtypes_convert_in_rust(name, dtype, values):
    ring = shm.SpscRing.create(name, 8, dtype=dtype)
    tx, rx = ring.producer(), ring.consumer()
    for v in values:
        tx.push(v)
    got = [rx.pop() for _ in values]
    assert got == values
    assert all(type(g) is type(v) for g, v in zip(got, values))


def test_other_scalar_dtypes_go_through_numpy(name_factory):
    for dtype, value in [("c16", 1 + 2j), ("f2", 0.5), (">u4", 7), ("M8[ns]", np.datetime64(5, "ns"))]:
        ring = shm.SpscRing.create(name_factory(), 2, dtype=dtype)
        tx, rx = ring.producer(), ring.consumer()
        tx.push(value)
        got = rx.pop()
        assert got == value and isinstance(got, np.generic)


def test_struct_dtype_takes_tuples_void_and_bytes(name):
    ring = shm.SpscRing.create(name, 4, dtype=POINT)
    assert (ring.itemsize, ring.dtype) == (8, POINT)
    tx, rx = ring.producer(), ring.consumer()
    tx.push((1, 2.5))
    tx.push(np.array((3, 0.5), dtype=POINT)[()])
    tx.push(np.array([(9, 1.0)], dtype=POINT).tobytes())
    a, b, c = rx.pop(), rx.pop(), rx.pop()
    assert isinstance(a, np.void)
    assert (a["x"], a["y"], b["x"], c["x"]) == (1, 2.5, 3, 9)
    with pytest.raises(ValueError, match="8 bytes"):
        tx.push(b"\x00" * 7)


def test_attach_checks_the_layout(name):
    ring = shm.SpscRing.create(name, 4, dtype="u8")  # noqa: F841 (kept alive)
    with pytest.raises(ValueError) as err:
        shm.SpscRing.attach(name, dtype="u4")
    msg = str(err.value)
    assert name in msg and "8 bytes aligned to 8" in msg and "4 bytes aligned to 4" in msg
    # Same size, other alignment: a packed struct is not a u8.
    packed = np.dtype([("a", "u1"), ("b", "<u4"), ("c", "u1"), ("d", "u2")])
    assert (packed.itemsize, packed.alignment) == (8, 1)
    with pytest.raises(ValueError, match="aligned to 1"):
        shm.SpscRing.attach(name, dtype=packed)
    with pytest.raises(ValueError, match="not a MPMC ring|not a MPMC"):
        shm.MpmcRing.attach(name, dtype="u8")


def test_create_and_attach_errors(name_factory):
    n = name_factory()
    with pytest.raises(FileNotFoundError, match=n):
        shm.SpscRing.attach(n)
    with pytest.raises(ValueError, match="power of two"):
        shm.SpscRing.create(n, 5)
    with pytest.raises(ValueError, match="at least 1"):
        shm.MpmcRing.create(n, 0)
    assert not exists(n)
    ring = shm.SpscRing.create(n, 4)
    with pytest.raises(FileExistsError):
        shm.SpscRing.create(n, 4)
    with pytest.raises(ValueError, match="not supported.*itemsize/alignment"):
        shm.SpscRing.create(name_factory(), 4, dtype="V7")
    with pytest.raises(ValueError, match="Python objects"):
        shm.SpscRing.create(name_factory(), 4, dtype=object)
    del ring


def test_roles_are_exclusive_and_given_back(name):
    ring = shm.SpscRing.create(name, 4)
    tx = ring.producer()
    with pytest.raises(shm.ShmError, match=f"producer role is held by live process {os.getpid()}"):
        shm.SpscRing.attach(name).producer()
    rx = ring.consumer()
    with pytest.raises(shm.ShmError, match="consumer role"):
        ring.consumer()
    assert not tx.is_abandoned and not rx.is_abandoned
    tx.push(1)
    tx.close()
    assert rx.is_abandoned
    with pytest.raises(ValueError, match="closed"):
        tx.push(2)
    with ring.producer() as tx2:  # given back: taken again
        tx2.push(2)
    assert [rx.pop(), rx.pop()] == [1, 2]
    # pop_blocking returns None at the end of the stream: empty, producer gone.
    assert rx.pop_blocking(timeout=5) is None


def test_creator_unlinks_when_collected(name_factory):
    n = name_factory()
    ring = shm.SpscRing.create(n, 4)
    other = shm.SpscRing.attach(n)
    assert ring.remove_on_drop and not other.remove_on_drop
    del other
    gc.collect()
    assert exists(n)
    tx = ring.producer()
    del ring
    gc.collect()
    assert exists(n)  # the role keeps the ring alive
    del tx
    gc.collect()
    assert not exists(n)
    kept = shm.MpmcRing.create(n, 4)
    kept.unlink()
    assert not exists(n)
    assert kept.capacity == 4


def test_bulk_with_numpy_partial_and_wrapping(name):
    ring = shm.SpscRing.create(name, 64, dtype="u8")
    tx, rx = ring.producer(), ring.consumer()
    assert tx.push_many(np.arange(100, dtype="u8")) == 64
    out = np.zeros(100, dtype="u8")
    assert rx.pop_into(out) == 64
    assert (out[:64] == np.arange(64)).all()
    # Many laps with odd sizes: every batch wraps sooner or later.
    sent, got = 0, []
    rng = np.random.default_rng(1)
    while sent < 5000:
        k = int(rng.integers(1, 50))
        sent += tx.push_many(np.arange(sent, sent + k, dtype="u8"))
        buf = np.empty(int(rng.integers(1, 60)), dtype="u8")
        n = rx.pop_into(buf)
        got.extend(buf[:n].tolist())
    while (n := rx.pop_into(buf)) > 0:
        got.extend(buf[:n].tolist())
    assert got == list(range(sent))
    assert tx.push_many(b"") == 0 and rx.pop_into(bytearray()) == 0


def test_bulk_takes_raw_bytes_and_refuses_other_itemsizes(name):
    ring = shm.SpscRing.create(name, 8, dtype="u4")
    tx, rx = ring.producer(), ring.consumer()
    assert tx.push_many((7).to_bytes(4, "little") * 3) == 3
    out = bytearray(12)
    assert rx.pop_into(out) == 3 and out == (7).to_bytes(4, "little") * 3
    with pytest.raises(ValueError, match="items of 8 bytes"):
        tx.push_many(np.zeros(2, dtype="u8"))
    with pytest.raises(ValueError, match="multiple of 4"):
        tx.push_many(b"abcde")
    with pytest.raises(BufferError, match="not writable"):
        rx.pop_into(b"read-only!!!")
    with pytest.raises((BufferError, ValueError), match="contiguous"):
        tx.push_many(np.zeros(8, dtype="u4")[::2])  # not contiguous


def test_unaligned_buffers(name_factory):
    for cls in (shm.SpscRing, shm.MpmcRing):
        ring = cls.create(name_factory(), 16, dtype="u8")
        tx, rx = (ring.producer(), ring.consumer()) if cls is shm.SpscRing else (ring, ring)
        raw = bytearray(8 * 10 + 1)
        src = np.frombuffer(raw, dtype="u8", count=10, offset=1)
        assert not src.flags.aligned
        src[:] = np.arange(10, dtype="u8") * 0x0101010101
        assert tx.push_many(src) == 10
        raw_out = bytearray(8 * 10 + 3)
        out = np.frombuffer(raw_out, dtype="u8", count=10, offset=3)
        assert not out.flags.aligned
        assert rx.pop_into(out) == 10
        assert (out == np.arange(10, dtype="u8") * 0x0101010101).all()


def test_struct_bulk(name):
    ring = shm.SpscRing.create(name, 32, dtype=POINT)
    tx, rx = ring.producer(), ring.consumer()
    a = np.zeros(20, dtype=POINT)
    a["x"] = np.arange(20)
    a["y"] = np.arange(20) / 2
    assert tx.push_many(a) == 20
    b = np.zeros(20, dtype=POINT)
    assert rx.pop_into(b) == 20
    assert (a == b).all()


def test_write_and_read_chunks(name):
    ring = shm.SpscRing.create(name, 8, dtype="u8")
    tx, rx = ring.producer(), ring.consumer()
    chunk = tx.write_chunk(5)
    assert len(chunk) == 5 and chunk.itemsize == 8 and chunk.is_open
    view = np.frombuffer(chunk, dtype="u8")
    assert (view == 0).all()  # zeroed, never an earlier lap's data
    view[:] = [10, 11, 12, 13, 14]
    with pytest.raises(shm.ShmError, match="write chunk is open"):
        tx.push(1)
    with pytest.raises(BufferError, match="still exported"):
        chunk.commit(3)
    del view
    chunk.commit(3)
    assert not chunk.is_open
    with pytest.raises(ValueError, match="committed or released"):
        memoryview(chunk)
    with pytest.raises(ValueError, match="already"):
        chunk.commit()
    rchunk = rx.read_chunk(8)
    assert len(rchunk) == 3
    with memoryview(rchunk) as mv:
        assert mv.readonly
        assert mv.cast("Q").tolist() == [10, 11, 12]
    rchunk.commit(1)
    assert rx.pop() == 11
    # The slots after the tail up to the end of the array: a chunk never wraps.
    tx.push_many(np.arange(3, dtype="u8"))
    c = tx.write_chunk(8)
    assert len(c) == 2  # positions 6 and 7; 0.. would wrap
    c.release()
    with tx.write_chunk(1) as c:
        pass  # not committed: released
    assert not c.is_open
    assert rx.read_chunk(0) is not None
    assert [rx.pop() for _ in range(5)] == [12, 0, 1, 2, None]
    assert rx.read_chunk(4) is None
    tx.push_many(np.arange(8, dtype="u8"))
    with pytest.raises(shm.RingFull):
        tx.write_chunk(1)


def test_collected_chunk_frees_the_role(name):
    ring = shm.SpscRing.create(name, 8)
    tx = ring.producer()
    old = tx.write_chunk(2)
    old.commit(0)
    new = tx.write_chunk(2)
    del old
    gc.collect()
    with pytest.raises(shm.ShmError, match="open"):
        tx.push(1)  # the newer chunk is still open
    del new
    gc.collect()
    tx.push(1)


def test_blocking_calls(name):
    ring = shm.SpscRing.create(name, 2, dtype="u8")
    tx, rx = ring.producer(), ring.consumer()
    with pytest.raises(TimeoutError, match="pop_blocking"):
        rx.pop_blocking(timeout=0.05)
    with pytest.raises(ValueError):
        rx.pop_blocking(timeout=-1)
    threading.Timer(0.1, lambda: tx.push(5)).start()
    assert rx.pop_blocking(timeout=10) == 5
    tx.push(1)
    tx.push(2)
    with pytest.raises(TimeoutError, match="push_blocking"):
        tx.push_blocking(3, timeout=0.05)
    threading.Timer(0.1, rx.pop).start()
    tx.push_blocking(3, timeout=10)
    rx.close()
    with pytest.raises(BrokenPipeError, match="consumer is gone"):
        tx.push_blocking(4, timeout=10)


def test_blocking_wait_honours_ctrl_c(name):
    ring = shm.SpscRing.create(name, 2)
    rx = ring.consumer()
    _tx = ring.producer()  # a live producer: pop_blocking would wait for ever
    # A Python started with SIGINT ignored (a background job of a script,
    # `nohup`) installs no Ctrl-C handler, and the SIGINT below would be
    # lost: install Python's own for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main = threading.main_thread().ident
        timer = threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT))
        timer.start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            rx.pop_blocking()
        timer.join()
        assert time.monotonic() - started < 30
    finally:
        signal.signal(signal.SIGINT, previous)


def test_mpmc_basics(name):
    ring = shm.MpmcRing.create(name, 8, dtype="i4")
    other = shm.MpmcRing.attach(name, dtype="i4")
    assert ring.pop() is None
    for i in range(8):
        ring.push(-i)
    with pytest.raises(shm.RingFull):
        other.push(1)
    assert len(other) == 8
    assert [other.pop() for _ in range(3)] == [0, -1, -2]
    assert ring.push_many(np.arange(10, dtype="i4")) == 3
    out = np.zeros(16, dtype="i4")
    assert other.pop_into(out) == 8
    assert out[:8].tolist() == [-3, -4, -5, -6, -7, 0, 1, 2]
    with pytest.raises(TimeoutError):
        ring.pop_blocking(timeout=0.05)
    threading.Timer(0.1, lambda: other.push(9)).start()
    assert ring.pop_blocking(timeout=10) == 9
    assert ring.recovered == (0, 0)


def test_mpmc_threads(name):
    ring = shm.MpmcRing.create(name, 64, dtype="u8")
    n, got = 2000, []

    def produce(base):
        for i in range(n):
            ring.push_blocking(base + i, timeout=30)

    threads = [threading.Thread(target=produce, args=(k * 10**6,)) for k in range(2)]
    for t in threads:
        t.start()
    for _ in range(2 * n):
        got.append(ring.pop_blocking(timeout=30))
    for t in threads:
        t.join()
    for k in range(2):
        mine = [v - k * 10**6 for v in got if v // 10**6 == k]
        assert mine == list(range(n))


def test_mpmc_bulk_larger_than_the_stage(name):
    ring = shm.MpmcRing.create(name, 8192, dtype="u8")
    data = np.arange(8192, dtype="u8")
    assert ring.push_many(data) == 8192
    out = np.zeros(9000, dtype="u8")
    assert ring.pop_into(out) == 8192
    assert (out[:8192] == data).all()


def test_chunk_repr(name):
    ring = shm.SpscRing.create(name, 8, dtype="u8")
    tx, rx = ring.producer(), ring.consumer()
    c = tx.write_chunk(3)
    assert repr(c) == f"RingWriteChunk({name!r}, len=3, itemsize=8, open)".replace("'", '"')
    c.commit(1)
    assert repr(c).endswith("ended)")
    r = rx.read_chunk(4)
    assert repr(r) == f'RingReadChunk("{name}", len=1, itemsize=8, open)'
    r.release()
    assert "ended" in repr(r)
