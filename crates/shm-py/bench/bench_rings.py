"""Items and messages per second between two Python processes (the
producer in a forked child, the consumer here), every case interleaved
in the same run (harness.interleave):

- small items (u64): shm.SpscRing push/pop one at a time, a pure-Python
  reader/writer of the same SPSC layout (mmap + struct: the baseline the
  binding must beat), multiprocessing.Queue and multiprocessing.Pipe;
- the same in bulk: push_many/pop_into of numpy arrays vs Queue and Pipe
  carrying the same arrays (pickled / send_bytes);
- channel messages (64 B and 4 KiB): shm.Channel vs Pipe.send_bytes.

Each case times the consumer from its first item to its last (process
start-up left out). Run:

    target/py-venv/bin/python crates/shm-py/bench/bench_rings.py [--quick]
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import platform
import struct
import sys
import time
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

import shm  # noqa: E402

CTX = mp.get_context("fork")
BATCH = 1024


def uniq() -> str:
    return f"/shm-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def run(child, consume) -> float:
    """Starts `child` in a forked process, runs `consume` (which returns
    the seconds from its first item to its last), joins."""
    p = CTX.Process(target=child)
    p.start()
    try:
        secs = consume()
    finally:
        p.join(120)
    if p.exitcode != 0:
        raise RuntimeError(f"producer exited with {p.exitcode}")
    return secs


# ---- small items, one at a time ------------------------------------------


def case_spsc_single(n: int) -> float:
    name = uniq()
    ring = shm.SpscRing.create(name, 4096, dtype="u8")

    def child():
        tx = shm.SpscRing.attach(name, dtype="u8").producer()
        push = tx.push_blocking
        for i in range(n):
            push(i)

    def consume():
        rx = ring.consumer()
        pop = rx.pop_blocking
        pop()
        t0 = time.perf_counter()
        for _ in range(n - 1):
            pop()
        return time.perf_counter() - t0

    return run(child, consume)


def case_spsc_single_nowait(n: int) -> float:
    """push/pop (no blocking call): the producer retries on RingFull, the
    consumer on None."""
    name = uniq()
    ring = shm.SpscRing.create(name, 4096, dtype="u8")

    def child():
        tx = shm.SpscRing.attach(name, dtype="u8").producer()
        push = tx.push
        for i in range(n):
            while True:
                try:
                    push(i)
                    break
                except shm.RingFull:
                    pass

    def consume():
        rx = ring.consumer()
        pop = rx.pop
        while pop() is None:
            pass
        t0 = time.perf_counter()
        left = n - 1
        while left:
            if pop() is not None:
                left -= 1
        return time.perf_counter() - t0

    return run(child, consume)


# The SPSC layout (crates/shm-ring/src/layout.rs, docs/architecture.md):
TAIL, HEAD, SLOTS = 128, 256, 768


def case_pure_python(n: int) -> float:
    """A reader and writer of the SPSC ring's layout in pure Python (mmap +
    struct), no roles: what one would write without the binding."""
    name = uniq()
    cap = 4096
    ring = shm.SpscRing.create(name, cap, dtype="u8", blocking=False)
    mask = cap - 1

    def open_map():
        fd = os.open("/dev/shm" + name, os.O_RDWR)
        try:
            return mmap.mmap(fd, 0)
        finally:
            os.close(fd)

    def child():
        mm = open_map()
        unpack, pack = struct.unpack_from, struct.pack_into
        tail = unpack("<Q", mm, TAIL)[0]
        for i in range(n):
            while tail - unpack("<Q", mm, HEAD)[0] >= cap:
                pass
            pack("<Q", mm, SLOTS + (tail & mask) * 8, i)
            tail += 1
            pack("<Q", mm, TAIL, tail)

    def consume():
        mm = open_map()
        unpack, pack = struct.unpack_from, struct.pack_into
        head = unpack("<Q", mm, HEAD)[0]
        t0 = None
        for _ in range(n):
            while unpack("<Q", mm, TAIL)[0] == head:
                pass
            unpack("<Q", mm, SLOTS + (head & mask) * 8)
            head += 1
            pack("<Q", mm, HEAD, head)
            if t0 is None:
                t0 = time.perf_counter()
        return time.perf_counter() - t0

    try:
        return run(child, consume)
    finally:
        del ring


def case_queue_single(n: int) -> float:
    q = CTX.Queue()

    def child():
        for i in range(n):
            q.put(i)

    def consume():
        q.get()
        t0 = time.perf_counter()
        for _ in range(n - 1):
            q.get()
        return time.perf_counter() - t0

    return run(child, consume)


def case_pipe_single(n: int) -> float:
    a, b = CTX.Pipe(duplex=False)

    def child():
        for i in range(n):
            b.send(i)

    def consume():
        a.recv()
        t0 = time.perf_counter()
        for _ in range(n - 1):
            a.recv()
        return time.perf_counter() - t0

    return run(child, consume)


# ---- small items in bulk --------------------------------------------------


def case_spsc_bulk(n: int) -> float:
    name = uniq()
    ring = shm.SpscRing.create(name, 16384, dtype="u8")

    def child():
        tx = shm.SpscRing.attach(name, dtype="u8").producer()
        data = np.arange(BATCH, dtype="u8")
        sent = 0
        while sent < n:
            k = tx.push_many(data[: min(BATCH, n - sent)])
            if k == 0:
                tx.push_blocking(int(data[0]))  # wait for room
                k = 1
            sent += k

    def consume():
        rx = ring.consumer()
        out = np.empty(BATCH, dtype="u8")
        rx.pop_blocking()
        got = 1
        t0 = time.perf_counter()
        while got < n:
            k = rx.pop_into(out)
            if k == 0:
                rx.pop_blocking()
                k = 1
            got += k
        return time.perf_counter() - t0

    return run(child, consume)


def case_queue_bulk(n: int) -> float:
    q = CTX.Queue()

    def child():
        data = np.arange(BATCH, dtype="u8")
        for _ in range(n // BATCH):
            q.put(data)

    def consume():
        q.get()
        t0 = time.perf_counter()
        for _ in range(n // BATCH - 1):
            q.get()
        return time.perf_counter() - t0

    return run(child, consume)


def case_pipe_bulk(n: int) -> float:
    a, b = CTX.Pipe(duplex=False)

    def child():
        data = np.arange(BATCH, dtype="u8")
        for _ in range(n // BATCH):
            b.send_bytes(data)

    def consume():
        out = np.empty(BATCH, dtype="u8")
        a.recv_bytes_into(out)
        t0 = time.perf_counter()
        for _ in range(n // BATCH - 1):
            a.recv_bytes_into(out)
        return time.perf_counter() - t0

    return run(child, consume)


# ---- channel messages -----------------------------------------------------


def channel_case(size: int):
    def case(n: int) -> float:
        name = uniq()
        ch = shm.Channel.create(name, 64, size)
        msg = bytes(size)

        def child():
            tx = shm.Channel.attach(name)
            send = tx.send_bytes
            for _ in range(n):
                try:
                    send(msg)
                except shm.RingEmpty:
                    # Every block is in flight: wait for one to come back.
                    blk = tx.get_blocking()
                    with memoryview(blk) as view:
                        view[:size] = msg
                    tx.send(blk, size)

        def consume():
            recv = ch.recv_blocking
            recv().release()
            t0 = time.perf_counter()
            for _ in range(n - 1):
                with recv() as blk:
                    blk.data  # the message, in place  # noqa: B018
            return time.perf_counter() - t0

        return run(child, consume)

    return case


def pipe_msg_case(size: int):
    def case(n: int) -> float:
        a, b = CTX.Pipe(duplex=False)
        msg = bytes(size)

        def child():
            for _ in range(n):
                b.send_bytes(msg)

        def consume():
            a.recv_bytes()
            t0 = time.perf_counter()
            for _ in range(n - 1):
                a.recv_bytes()
            return time.perf_counter() - t0

        return run(child, consume)

    return case


def main() -> None:
    quick = "--quick" in sys.argv
    rounds = 3 if quick else 5
    scale = 1 if quick else 4
    out = [
        f"### Python rings and channel ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {rounds} rounds)",
        "",
    ]
    single = {
        "multiprocessing.Queue": case_queue_single,
        "multiprocessing.Pipe": case_pipe_single,
        "pure-Python ring (mmap + struct)": case_pure_python,
        "shm.SpscRing push_blocking/pop_blocking": case_spsc_single,
        "shm.SpscRing push/pop (retry on full/None)": case_spsc_single_nowait,
    }
    rows = harness.interleave(single, 20000 * scale, rounds, "multiprocessing.Queue")
    out.append(harness.table("u64 items one at a time (items/s)", rows, "multiprocessing.Queue"))
    bulk = {
        "multiprocessing.Queue (single items)": case_queue_single,
        "multiprocessing.Queue (arrays of 1024)": case_queue_bulk,
        "multiprocessing.Pipe send_bytes (arrays of 1024)": case_pipe_bulk,
        "shm.SpscRing push_many/pop_into (1024)": case_spsc_bulk,
    }
    # The single-item Queue moves fewer items (it is slow); rates are per item.
    rows = interleave_items(bulk, {"multiprocessing.Queue (single items)": 20000 * scale}, BATCH * 200 * scale, rounds)
    out.append(harness.table("u64 items in bulk (items/s)", rows, "multiprocessing.Queue (single items)"))
    for size in (64, 4096):
        cases = {
            "multiprocessing.Pipe send_bytes/recv_bytes": pipe_msg_case(size),
            "shm.Channel send_bytes/recv_blocking": channel_case(size),
        }
        rows = harness.interleave(cases, 20000 * scale, rounds, "multiprocessing.Pipe send_bytes/recv_bytes")
        out.append(harness.table(f"{size}-byte messages (messages/s)", rows, "multiprocessing.Pipe send_bytes/recv_bytes"))
    print("\n".join(out))


def interleave_items(cases, own_n, n, rounds):
    """harness.interleave with a different item count per case (slow cases
    move fewer items), rates per item."""
    wrapped = {}
    for k, f in cases.items():
        m = own_n.get(k, n)
        wrapped[k] = (lambda f, m: (lambda _n: f(m) * n / m))(f, m)
    return harness.interleave(wrapped, n, rounds, next(iter(cases)))


if __name__ == "__main__":
    main()
