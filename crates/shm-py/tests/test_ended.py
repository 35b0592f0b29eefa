"""One exception for an object used after it ended, Python's convention for a
closed file: ValueError. Committed or released chunks, sent or released
channel blocks, given-back pool blocks, closed roles, rings, channels,
segments and pyshm objects, for their methods and their buffers alike.
Objects inherited across fork(2) raise shm.ShmError instead (they did not
end: they belong to the parent), and a live export is a BufferError."""

import os
import random

import pytest

import shm
from ring_helpers import name, name_factory  # noqa: F401 (fixtures)
from shm import mempool, ring


def ended_objects(name_factory):
    """(label, object, call that uses it) for every kind of ended object."""
    out = []

    r = shm.SpscRing.create(name_factory(), 8, dtype="u8")
    tx, rx = r.producer(), r.consumer()
    wc = tx.write_chunk(2)
    wc.commit()
    out += [("committed write chunk", wc, lambda: wc.commit()), ("released write chunk", wc, lambda: wc.release())]
    rc = rx.read_chunk(2)
    rc.release()
    out += [("released read chunk", rc, lambda: rc.commit())]
    tx.close()
    rx.close()
    out += [("closed producer", tx, lambda: tx.push(1)), ("closed consumer", rx, lambda: rx.pop())]
    r.close()
    out += [("closed SpscRing", r, lambda: r.producer())]

    m = shm.MpmcRing.create(name_factory(), 8, dtype="u8")
    m.close()
    out += [("closed MpmcRing", m, lambda: m.push(1))]

    ch = shm.Channel.create(name_factory(), 4, 64)
    sent = ch.get()
    ch.send(sent, 0)
    released = ch.recv()
    released.release()
    out += [("sent ChannelBlock", sent, lambda: sent.tobytes()),
            ("released ChannelBlock", released, lambda: released.used)]
    ch.close()
    out += [("closed Channel", ch, lambda: ch.get())]

    mp = mempool.Mempool(2, 16)
    blk = mp.get()
    mp.put(blk)
    out += [("given-back MempoolBlock", blk, lambda: blk.tobytes())]
    mp.cleanup()
    out += [("cleaned-up Mempool", mp, lambda: mp.get())]
    rg = ring.Ring(2)
    rg.cleanup()
    out += [("cleaned-up Ring", rg, lambda: rg.dequeue())]
    sm = shm.ShareMem(1 << 16)
    sm.cleanup()
    out += [("cleaned-up ShareMem", sm, lambda: sm.buf)]

    seg = shm.SharedMemory(name_factory().lstrip("/"), create=True, size=64)
    seg.close()
    seg.unlink()
    out += [("closed SharedMemory", seg, lambda: seg.buf)]
    mf = shm.Memfd("shm-test-ended", 64)
    mf.close()
    out += [("closed Memfd", mf, lambda: mf.buf)]
    sv = shm.SysV(random.randint(1, 2**31 - 2), 64, create=True)
    sv.remove()
    sv.detach()
    out += [("detached SysV", sv, lambda: sv.buf)]
    return out


def test_every_ended_object_raises_value_error(name_factory):
    for label, obj, call in ended_objects(name_factory):
        with pytest.raises(ValueError):
            call()
        # Exporters refuse a buffer the same way.
        if hasattr(type(obj), "__buffer__"):
            with pytest.raises(ValueError) as e:
                memoryview(obj)
            assert not isinstance(e.value, BufferError), label


def test_ended_chunk_and_block_messages(name):
    r = shm.SpscRing.create(name, 8, dtype="u8")
    tx = r.producer()
    c = tx.write_chunk(1)
    c.commit()
    with pytest.raises(ValueError, match="already committed or released"):
        c.commit()
    with pytest.raises(ValueError, match="committed or released"):
        memoryview(c)
    # A live export is still a BufferError.
    c2 = tx.write_chunk(1)
    v = memoryview(c2)
    with pytest.raises(BufferError, match="still exported"):
        c2.commit()
    v.release()
    c2.release()


def test_inherited_objects_raise_shm_error(name):
    """Across fork the objects did not end: they are the parent's."""
    ch = shm.Channel.create(name, 2, 64)
    cblk = ch.get()
    mp = mempool.Mempool(2, 8)
    mblk = mp.get()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for call in (lambda: memoryview(cblk), lambda: cblk.used, lambda: memoryview(mblk),
                         lambda: mblk.tobytes(), lambda: mp.put(mblk), lambda: ring.Ring(2).enqueue(mblk)):
                try:
                    call()
                except shm.ShmError:
                    continue
                os._exit(2)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cblk.is_held and mblk.held  # still the parent's
