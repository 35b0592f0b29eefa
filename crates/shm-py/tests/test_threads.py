"""Objects shared between Python threads: a call that finds the object busy
in another thread's blocking call raises an ordinary exception (never a
Rust panic, which Python shows as a BaseException)."""

from __future__ import annotations

import threading
import time

import pytest

import shm
from ring_helpers import name, name_factory  # noqa: F401 (fixtures)


def busy_then(call, blocked: threading.Thread):
    """Calls `call` until it stops failing with the 'ring full/empty' answer
    it gives before `blocked` is inside its blocking call; returns the
    exception it then raises."""
    for _ in range(500):
        try:
            out = call()
        except shm.RingFull:  # before the other thread took the object
            time.sleep(0.01)
            continue
        except Exception as e:  # noqa: BLE001 - what we want to see
            return e
        if out is None:  # read_chunk of an empty ring, likewise
            time.sleep(0.01)
            continue
        raise AssertionError(f"{call} succeeded while {blocked} was blocked: {out!r}")
    raise AssertionError("the blocking call never started")


def test_write_chunk_while_push_blocking_in_another_thread(name):
    ring = shm.SpscRing.create(name, 2, dtype="u8")
    tx, rx = ring.producer(), ring.consumer()
    tx.push(1)
    tx.push(2)
    t = threading.Thread(target=tx.push_blocking, args=(3,), kwargs={"timeout": 30})
    t.start()
    try:
        err = busy_then(lambda: tx.write_chunk(1), t)
        assert isinstance(err, RuntimeError), repr(err)
    finally:
        assert rx.pop() == 1
        t.join()
    assert (rx.pop(), rx.pop()) == (2, 3)


def test_read_chunk_while_pop_blocking_in_another_thread(name):
    ring = shm.SpscRing.create(name, 2, dtype="u8")
    tx, rx = ring.producer(), ring.consumer()
    got = []
    t = threading.Thread(target=lambda: got.append(rx.pop_blocking(timeout=30)))
    t.start()
    try:
        err = busy_then(lambda: rx.read_chunk(1), t)
        assert isinstance(err, RuntimeError), repr(err)
    finally:
        tx.push(4)
        t.join()
    assert got == [4]


@pytest.mark.parametrize("cls", [shm.SpscRing, shm.MpmcRing])
def test_remove_on_drop_reads_back_what_was_set(name, cls):
    ring = cls.create(name, 4, dtype="u8")
    assert ring.remove_on_drop
    ring.remove_on_drop = False
    assert not ring.remove_on_drop
    ring.remove_on_drop = True
    assert ring.remove_on_drop
    ring.unlink()
    assert not ring.remove_on_drop


def test_channel_remove_on_drop_reads_back_what_was_set(name):
    ch = shm.Channel.create(name, 2, 64)
    ch.remove_on_drop = False
    assert not ch.remove_on_drop
    ch.unlink()
    assert not ch.remove_on_drop


def test_negative_counts_are_value_errors(name):
    # As the segments' and pyshm's classes: a bad count is a ValueError
    # (it was an OverflowError from the int conversion on rings and channels).
    with pytest.raises(ValueError, match="capacity"):
        shm.SpscRing.create(name, -1)
    with pytest.raises(ValueError, match="capacity"):
        shm.MpmcRing.create(name, -4)
    with pytest.raises(ValueError, match="blocks"):
        shm.Channel.create(name, -1, 64)
    with pytest.raises(ValueError, match="block_size"):
        shm.Channel.create(name, 2, -64)
    ring = shm.SpscRing.create(name + "-r", 4)
    try:
        tx, rx = ring.producer(), ring.consumer()
        with pytest.raises(ValueError, match="write_chunk"):
            tx.write_chunk(-1)
        with pytest.raises(ValueError, match="read_chunk"):
            rx.read_chunk(-1)
    finally:
        ring.unlink()
    ch = shm.Channel.create(name + "-c", 2, 64)
    try:
        with pytest.raises(ValueError, match="recv_many"):
            ch.recv_many(-1)
    finally:
        ch.unlink()
