"""close(), `closed` and `with` on the rings and the channel, what a close
does to the ends made from the handle (roles, chunks, blocks: they keep the
mapping alive and keep working), and when the creator's name goes."""

import gc
import os

import numpy as np
import pytest

import shm
from ring_helpers import name, name_factory  # noqa: F401 (fixtures)


def exists(n):
    return os.path.exists("/dev/shm" + n)


def make(kind, n):
    if kind == "spsc":
        return shm.SpscRing.create(n, 8, dtype="u8")
    if kind == "mpmc":
        return shm.MpmcRing.create(n, 8, dtype="u8")
    return shm.Channel.create(n, 4, 64)


def attach(kind, n):
    if kind == "spsc":
        return shm.SpscRing.attach(n, dtype="u8")
    if kind == "mpmc":
        return shm.MpmcRing.attach(n, dtype="u8")
    return shm.Channel.attach(n)


KINDS = ["spsc", "mpmc", "channel"]


@pytest.mark.parametrize("kind", KINDS)
def test_with_closes_and_the_creator_unlinks(kind, name):
    with make(kind, name) as h:
        assert not h.closed
        assert exists(name)
        assert h.name == name
    assert h.closed
    assert "closed" in repr(h)
    # The creator's handle with nothing made from it: the close removes the name,
    # as collecting it would.
    assert not exists(name)
    h.close()  # a second close does nothing


@pytest.mark.parametrize("kind", KINDS)
def test_closed_handle_raises_value_error(kind, name):
    h = make(kind, name)
    h.close()
    calls = {
        "spsc": [lambda: h.producer(), lambda: h.consumer(), lambda: len(h), lambda: h.capacity],
        "mpmc": [lambda: h.push(1), lambda: h.pop(), lambda: h.push_blocking(1), lambda: h.pop_blocking(),
                 lambda: h.push_many(bytes(8)), lambda: h.pop_into(bytearray(8)), lambda: len(h),
                 lambda: h.recovered],
        "channel": [lambda: h.get(), lambda: h.get_blocking(), lambda: h.send_bytes(b"x"), lambda: h.recv(),
                    lambda: h.recv_blocking(), lambda: h.recv_bytes(), lambda: h.recv_many(2),
                    lambda: len(h), lambda: h.free, lambda: h.reclaim_dead()],
    }[kind]
    for call in calls:
        with pytest.raises(ValueError, match=f"{name}.*closed"):
            call()
    with pytest.raises(ValueError, match="closed"):
        h.unlink()
    with pytest.raises(ValueError, match="closed"):
        h.remove_on_drop = False
    # What needs no mapping still answers.
    assert h.name == name


@pytest.mark.parametrize("kind", KINDS)
def test_attached_handle_close_leaves_the_name(kind, name):
    creator = make(kind, name)
    with attach(kind, name) as other:
        pass
    assert other.closed and exists(name)
    assert not creator.closed
    creator.close()
    assert not exists(name)


def test_spsc_roles_outlive_the_ring_handle(name):
    ring = shm.SpscRing.create(name, 8, dtype="u8")
    tx, rx = ring.producer(), ring.consumer()
    chunk = tx.write_chunk(2)
    arr = np.frombuffer(chunk, dtype="u8")
    ring.close()
    # The roles and the chunk hold the mapping themselves: they keep working,
    # and the name stays until the last of them is gone.
    assert exists(name)
    arr[:] = [5, 6]
    del arr
    chunk.commit()
    tx.push(7)
    assert [rx.pop(), rx.pop(), rx.pop(), rx.pop()] == [5, 6, 7, None]
    tx.close()
    rx.close()
    assert exists(name)  # the chunk object still holds the ring
    del chunk
    gc.collect()
    assert not exists(name)


def test_spsc_chunk_array_outlives_everything(name):
    ring = shm.SpscRing.create(name, 8, dtype="u8")
    tx = ring.producer()
    chunk = tx.write_chunk(4)
    # NumPy releases the buffer at once and keeps only the chunk object as
    # the array's base, so the chunk may end under it.
    arr = np.ndarray((4,), dtype="u8", buffer=chunk)
    chunk.release()
    del chunk
    tx.close()
    ring.close()
    assert exists(name)
    arr[:] = 9  # still mapped: memory-safe
    assert arr.tolist() == [9, 9, 9, 9]
    del arr
    gc.collect()
    assert not exists(name)


def test_channel_blocks_outlive_the_channel_handle(name):
    ch = shm.Channel.create(name, 4, 64)
    blk = ch.get()
    got_sent = ch.get()
    ch.send(got_sent, 0)
    got = ch.recv()
    ch.close()
    with memoryview(blk) as view:
        view[:2] = b"ok"
    blk.used = 2
    assert blk.tobytes() == b"ok"
    # A closed handle sends nothing, not even its own blocks.
    other = shm.Channel.attach(name)
    with pytest.raises(ValueError, match="closed"):
        ch.send(blk)
    with pytest.raises(ValueError, match="another channel"):
        other.send(blk)
    blk.release()
    got.release()
    assert other.free == 4
    other.close()
    # A block object keeps the mapping for its whole life (an array made with
    # numpy.ndarray(buffer=blk) keeps only the object), so the name too.
    assert exists(name)
    del blk, got, got_sent
    gc.collect()
    assert not exists(name)


def test_mpmc_close_then_reattach(name):
    ring = shm.MpmcRing.create(name, 8, dtype="u8")
    ring.push(3)
    ring.remove_on_drop = False
    ring.close()
    assert exists(name)
    with shm.MpmcRing.attach(name, dtype="u8") as again:
        assert again.pop() == 3
        again.unlink()
    assert not exists(name)
