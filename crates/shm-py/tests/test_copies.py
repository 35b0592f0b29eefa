"""Copies between Python buffers and shared memory where the Python buffer is
itself shared memory: a memoryview of another segment, of a pool block, or of
the very range being written (overlapping). The result must be `memmove`'s
(as if the source were read whole first), at every alignment and at lengths
around the copy's word size (8), its assembly threshold (1024) and its bounce
buffer (4096)."""

import os
import uuid

import pytest

import shm
from ring_helpers import name, name_factory  # noqa: F401 (fixtures)
from sysv_helpers import free_key

LENS = [0, 1, 7, 8, 9, 100, 1023, 1024, 1025, 4096, 5000, 9000]
# Destination minus source: overlapping either way by a byte, a word and
# more, at equal and different alignments.
DELTAS = [-9, -8, -7, -1, 1, 7, 8, 9, 50]
SIZE = 3 * 9000


def memmove(b: bytearray, dst: int, src: int, n: int) -> None:
    b[dst : dst + n] = bytes(b[src : src + n])


@pytest.fixture
def seg():
    """A SharedMemory of SIZE random bytes (stdlib-style name), unlinked after."""
    s = shm.SharedMemory(f"shm-test-copy-{uuid.uuid4().hex[:12]}", create=True, size=SIZE)
    s.buf[:] = os.urandom(SIZE)
    yield s
    s.unlink()
    s.close()


@pytest.fixture
def seg2():
    s = shm.SharedMemory(f"shm-test-copy-{uuid.uuid4().hex[:12]}", create=True, size=SIZE)
    yield s
    s.unlink()
    s.close()


@pytest.fixture
def sysv():
    """A SysV segment of SIZE random bytes under a random free key, removed after."""
    s = shm.SysV(free_key(), SIZE, create=True)
    try:
        s.write(os.urandom(SIZE), 0)
        yield s
    finally:
        s.remove()
        s.detach()


@pytest.mark.parametrize("n", LENS)
def test_write_from_a_view_of_another_segment(seg, seg2, n):
    for src in (0, 3, 8):
        for dst in (0, 5, 8, 4096 + 1):
            seg2.write(seg.buf[src : src + n], offset=dst)
            assert seg2.read(n, dst) == bytes(seg.buf[src : src + n]), (src, dst)


@pytest.mark.parametrize("n", LENS)
def test_write_from_an_overlapping_view_of_itself_is_memmove(seg, n):
    src = 100
    for delta in DELTAS:
        want = bytearray(seg.buf)
        memmove(want, src + delta, src, n)
        with seg.buf[src : src + n] as view:
            assert seg.write(view, offset=src + delta) == n
        assert seg.read() == want, delta


@pytest.mark.parametrize("n", [9, 1025, 5000])
def test_slice_assignment_from_an_overlapping_view_of_itself(seg, n):
    src = 64
    for delta in DELTAS:
        want = bytearray(seg.buf)
        memmove(want, src + delta, src, n)
        seg[src + delta : src + delta + n] = seg.buf[src : src + n]
        assert seg.read() == want, delta
    # Strided: the value is copied out whole first, then written.
    want = bytearray(seg.buf)
    want[src + 1 : src + 1 + 2 * n : 2] = bytes(want[src : src + n])
    seg[src + 1 : src + 1 + 2 * n : 2] = seg.buf[src : src + n]
    assert seg.read() == want


@pytest.mark.parametrize("n", [7, 1024, 4096 + 9])
def test_sysv_write_from_its_own_buffer_and_from_another_segment(sysv, seg, n):
    for delta in (-8, -1, 3, 8):
        want = bytearray(sysv.buf)
        memmove(want, 200 + delta, 200, n)
        sysv.write(sysv.buf[200 : 200 + n], offset=200 + delta)
        assert sysv.read(SIZE, 0) == want, delta
    sysv.seek(11)
    sysv.write(seg.buf[1 : 1 + n])
    assert sysv.read(n, 11) == bytes(seg.buf[1 : 1 + n])


@pytest.mark.parametrize("n", [0, 9, 1023, 1025, 4000])
def test_read_and_slicing_give_the_bytes(seg, n):
    for at in (0, 1, 8, 4099):
        want = bytes(seg.buf[at : at + n])
        assert seg.read(n, at) == want
        assert seg[at : at + n] == want


def test_channel_send_bytes_from_another_block_and_a_segment(name, seg):  # noqa: F811
    ch = shm.Channel.create(name, 4, 5000)
    blk = ch.get()
    with memoryview(blk) as view:
        view[:] = os.urandom(len(view))
        for n in (0, 7, 9, 1024, 1025, 4096):
            ch.send_bytes(view[3 : 3 + n])
            assert ch.recv_bytes() == bytes(view[3 : 3 + n])
    for n in (1, 8, 1023, 5000):
        ch.send_bytes(seg.buf[5 : 5 + n])
        got = ch.recv()
        assert got.used == n and got.tobytes() == bytes(seg.buf[5 : 5 + n])
        got.release()
    blk.release()
    assert ch.free == 4


@pytest.mark.parametrize("kind", ["spsc", "mpmc"])
def test_ring_bulk_copies_from_and_into_views_of_a_segment(name, seg, seg2, kind):  # noqa: F811
    if kind == "spsc":
        ring = shm.SpscRing.create(name, 1024, dtype="u8")
        tx, rx = ring.producer(), ring.consumer()
    else:
        ring = tx = rx = shm.MpmcRing.create(name, 1024, dtype="u8")
    for n, src, dst in [(1, 3, 5), (100, 0, 1), (700, 7, 0), (1024, 1, 9)]:
        # Unaligned views of shared memory on both sides; the SPSC copies
        # wrap around the ring's end sooner or later.
        assert tx.push_many(seg.buf[src : src + 8 * n]) == n
        assert rx.pop_into(seg2.buf[dst : dst + 8 * n]) == n
        assert bytes(seg2.buf[dst : dst + 8 * n]) == bytes(seg.buf[src : src + 8 * n]), n


def test_mempool_block_tobytes():
    from shm import mempool

    mp = mempool.Mempool(2, 5000)
    blk = mp.get()
    data = os.urandom(5000)
    with memoryview(blk) as view:
        view[:] = data
    assert blk.tobytes() == data
    mp.put(blk)
