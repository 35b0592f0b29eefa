"""Python and Rust processes on one ring or channel, both directions: the
Rust peers are crates/shm-ring/examples/ring_peer.rs and
crates/shm-mempool/examples/channel_peer.rs."""

import subprocess

import numpy as np
import pytest

import shm
from ring_helpers import name, name_factory, rust_example  # noqa: F401 (fixtures)

N = 20000
POINT = np.dtype([("x", "<u4"), ("y", "<f4")], align=True)


@pytest.fixture(scope="module")
def ring_peer():
    return rust_example("shm-ring", "ring_peer")


@pytest.fixture(scope="module")
def channel_peer():
    return rust_example("shm-mempool", "channel_peer")


def start(binary, *args):
    return subprocess.Popen([str(binary), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.strip() == f"ok {N}"


def test_rust_produces_python_consumes(ring_peer, name):
    ring = shm.SpscRing.create(name, 64, dtype="u8")  # small: both sides wait
    rx = ring.consumer()
    proc = start(ring_peer, "produce", name, N)
    got = []
    buf = np.empty(50, dtype="u8")
    while len(got) < N:
        v = rx.pop_blocking(timeout=60)
        assert v is not None
        got.append(v)
        n = rx.pop_into(buf)
        got.extend(buf[:n].tolist())
    finish(proc)
    assert got == list(range(N))


def test_python_produces_rust_consumes(ring_peer, name):
    ring = shm.SpscRing.create(name, 64, dtype="u8")
    tx = ring.producer()
    proc = start(ring_peer, "consume", name, N)
    i = 0
    while i < N:
        if i % 3:
            tx.push_blocking(i, timeout=60)
            i += 1
        else:
            i += tx.push_many(np.arange(i, min(i + 20, N), dtype="u8"))
    finish(proc)


def test_struct_both_ways(ring_peer, name_factory):
    a = name_factory()
    ring = shm.SpscRing.create(a, 32, dtype=POINT)
    rx = ring.consumer()
    proc = start(ring_peer, "produce-struct", a, N)
    for i in range(N):
        v = rx.pop_blocking(timeout=60)
        assert (int(v["x"]), float(v["y"])) == (i, np.float32(i / 2))
    finish(proc)

    b = name_factory()
    ring = shm.SpscRing.create(b, 32, dtype=POINT)
    tx = ring.producer()
    proc = start(ring_peer, "consume-struct", b, N)
    batch = np.zeros(100, dtype=POINT)
    i = 0
    while i < N:
        k = min(100, N - i)
        batch["x"][:k] = np.arange(i, i + k)
        batch["y"][:k] = np.arange(i, i + k, dtype="f4") / 2
        i += tx.push_many(batch[:k])
    finish(proc)


def test_mpmc_both_ways(ring_peer, name_factory):
    a = name_factory()
    ring = shm.MpmcRing.create(a, 64, dtype="u8")
    proc = start(ring_peer, "mpmc-produce", a, N)
    assert [ring.pop_blocking(timeout=60) for _ in range(N)] == list(range(N))
    finish(proc)
    proc = start(ring_peer, "mpmc-consume", a, N)
    for i in range(N):
        ring.push_blocking(i, timeout=60)
    finish(proc)


def test_layout_mismatch_with_rust(ring_peer, name):
    ring = shm.SpscRing.create(name, 8, dtype="u4")  # noqa: F841 (kept alive)
    proc = subprocess.run([str(ring_peer), "consume", name, "1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "element size" in proc.stderr or "elem" in proc.stderr


def test_channel_both_ways(channel_peer, name_factory):
    a = name_factory()
    ch = shm.Channel.create(a, 8, 64)
    proc = start(channel_peer, "send", a, N)
    for i in range(N):
        with ch.recv_blocking(timeout=60) as blk:
            assert bytes(blk.data) == f"message {i}".encode()
    finish(proc)

    b = name_factory()
    ch = shm.Channel.create(b, 8, 64)
    proc = start(channel_peer, "recv", b, N)
    for i in range(N):
        while True:
            try:
                ch.send_bytes(f"message {i}".encode())
                break
            except shm.RingEmpty:
                pass
    finish(proc)
