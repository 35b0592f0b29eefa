"""shm.Channel and shm.ChannelBlock: zero-copy blocks, export counting,
send/recv in one process and across processes, batches, errors."""

import gc
import multiprocessing as mp
import os

import numpy as np
import pytest

import shm
from ring_helpers import name, name_factory  # noqa: F401 (fixtures)


def test_get_send_recv_in_place(name):
    tx = shm.Channel.create(name, 4, 100)
    rx = shm.Channel.attach(name)
    assert (tx.blocks, tx.block_size, tx.free, len(tx)) == (4, 128, 4, 0)
    blk = tx.get()
    assert len(blk) == 128 and blk.used == 0 and blk.is_held
    with memoryview(blk) as view:
        assert not view.readonly and view.nbytes == 128
        view[:5] = b"hello"
    tx.send(blk, 5)
    assert not blk.is_held and len(rx) == 1
    with pytest.raises(ValueError, match="already sent"):
        memoryview(blk)
    with pytest.raises(ValueError, match="already sent"):
        tx.send(blk)
    got = rx.recv()
    assert got.used == 5 and bytes(got.data) == b"hello" and got.tobytes() == b"hello"
    assert rx.recv() is None
    assert tx.free == 3
    got.release()
    assert tx.free == 4


def test_exports_pin_the_block(name):
    ch = shm.Channel.create(name, 2, 64)
    blk = ch.get()
    arr = np.frombuffer(blk, dtype="u8")
    arr[:] = np.arange(8)
    blk.used = 64
    with pytest.raises(BufferError, match="still exported"):
        ch.send(blk)
    with pytest.raises(BufferError, match="still exported"):
        blk.release()
    del arr
    ch.send(blk)
    got = ch.recv()
    data = got.data
    del got  # the view keeps the block (and the mapping) alive
    gc.collect()
    assert np.frombuffer(data, dtype="u8").tolist() == list(range(8))
    assert ch.free == 1
    data.release()
    gc.collect()
    assert ch.free == 2


def test_send_bytes_recv_bytes_and_exhaustion(name):
    ch = shm.Channel.create(name, 2, 64)
    ch.send_bytes(b"abc")
    ch.send_bytes(np.arange(2, dtype="u8"))  # any bytes-like object
    with pytest.raises(shm.RingEmpty, match="in use"):
        ch.get()
    with pytest.raises(shm.RingEmpty):
        ch.send_bytes(b"x")
    assert ch.recv_bytes() == b"abc"
    assert np.frombuffer(ch.recv_bytes(), dtype="u8").tolist() == [0, 1]
    assert ch.recv_bytes() is None
    with pytest.raises(ValueError, match="do not fit"):
        ch.send_bytes(bytes(65))
    blk = ch.get()
    with pytest.raises(ValueError, match="64 bytes"):
        blk.used = 65
    with pytest.raises(ValueError, match="do not fit"):
        ch.send(blk, 65)


def test_batches_and_foreign_blocks(name_factory):
    a = shm.Channel.create(name_factory(), 8, 64)
    b = shm.Channel.create(name_factory(), 8, 64)
    blocks = [a.get() for _ in range(3)]
    ids = [x.id for x in blocks]
    for i, blk in enumerate(blocks):
        blk.used = i
    assert a.send_many(blocks) == 3
    got = a.recv_many(8)
    assert [g.id for g in got] == ids and [g.used for g in got] == [0, 1, 2]
    assert a.recv_many(8) == []
    with pytest.raises(ValueError, match="another channel"):
        b.send(got[0])
    with pytest.raises(TypeError):
        a.send_many([b"not a block"])


def test_attach_errors(name_factory):
    n = name_factory()
    with pytest.raises(FileNotFoundError):
        shm.Channel.attach(n)
    ring = shm.SpscRing.create(n, 4)  # noqa: F841 (kept alive)
    with pytest.raises(ValueError, match="not a channel"):
        shm.Channel.attach(n)
    m = name_factory()
    ch = shm.Channel.create(m, 2, 64)  # noqa: F841
    with pytest.raises(FileExistsError):
        shm.Channel.create(m, 2, 64)
    with pytest.raises(ValueError):
        shm.SpscRing.attach(m)


def test_recv_blocking_times_out(name):
    ch = shm.Channel.create(name, 2, 64)
    with pytest.raises(TimeoutError, match="recv_blocking"):
        ch.recv_blocking(timeout=0.05)


def _sender(n, count):
    ch = shm.Channel.attach(n)
    for i in range(count):
        while True:
            try:
                blk = ch.get()
                break
            except shm.RingEmpty:
                pass
        data = f"message {i}".encode()
        with memoryview(blk) as view:
            view[: len(data)] = data
        ch.send(blk, len(data))


def test_across_processes(name):
    ch = shm.Channel.create(name, 4, 64)
    p = mp.get_context("spawn").Process(target=_sender, args=(name, 500))
    p.start()
    for i in range(500):
        with ch.recv_blocking(timeout=60) as blk:
            assert blk.tobytes() == f"message {i}".encode()
    p.join(60)
    assert p.exitcode == 0
    assert ch.free == 4


def test_forked_block_is_inert(name):
    ch = shm.Channel.create(name, 2, 64)
    blk = ch.get()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            memoryview(blk)
            code = 1
        except shm.ShmError:
            pass
        try:
            ch.send(blk)
            code = 2
        except shm.ShmError:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert blk.is_held and ch.free == 1
    ch.send(blk, 0)
    assert ch.recv() is not None
