"""shm's pyshm API (ShareMem, shm.mempool.Mempool, shm.ring.Ring) against
pyshm 0.0.1 itself (``pip install pyshm==0.0.1``), in one process and
across fork. Prints Markdown tables (see harness.py for the method).

    python bench/bench_pyshm.py [--n 200000] [--rounds 5]

Cases, each run the same way for both libraries:

- ``mempool get/put``: take a block and give it back, ``n`` times.
- ``ring enqueue/dequeue``: pass one block through a ring, ``n`` times.
- ``pipeline``: get, pack an int, enqueue, dequeue, unpack, put (one process).
- ``across fork``: a forked child gets blocks, packs a sequence number and
  enqueues them; the parent dequeues, checks and puts them back. Both spin
  (retrying on empty/full; for pyshm also on the generic errors it raises
  while the other side is mid-operation). The time runs from the parent's "go" to its
  last message. The pool and the ring have ``--fork-count`` blocks and
  entries (16384): with few CPUs and other load, the processes mostly run
  one at a time, and a small ring caps what each does per time slice.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import interleave, table, timed  # noqa: E402

import shm  # noqa: E402
from shm import mempool as s_mempool, ring as s_ring  # noqa: E402

try:
    import pyshm  # noqa: E402
    from pyshm import mempool as p_mempool, ring as p_ring  # noqa: E402
except ImportError:  # pragma: no cover
    sys.exit("pyshm is not installed: python3 -m pip install pyshm==0.0.1")

SHM_SIZE = 16 << 20
COUNT = 1024
SIZE = 64


class Lib:
    """One library's way to make the objects and its exceptions."""

    def __init__(self, name, share_mem, mempool, ring, pool_empty, ring_empty, ring_full, make_ring):
        self.name = name
        self.share_mem = share_mem
        self.mempool = mempool
        self.ring = ring
        self.pool_empty = pool_empty
        self.ring_empty = ring_empty
        self.ring_full = ring_full
        self.make_ring = make_ring

    def objects(self, count=COUNT):
        mem = self.share_mem(SHM_SIZE)
        pool = self.mempool.Mempool(count, SIZE, shm=mem)
        ring = self.make_ring(count, mem)
        return mem, pool, ring


SHM = Lib(
    "shm",
    shm.ShareMem,
    s_mempool,
    s_ring,
    s_mempool.EmptyError,
    s_ring.EmptyError,
    s_ring.FullError,
    lambda count, mem: s_ring.Ring(count, shm=mem),
)
PYSHM = Lib(
    "pyshm 0.0.1",
    pyshm.ShareMem,
    p_mempool,
    p_ring,
    # pyshm 0.0.1 also raises its generic errors (RingError "dequeue:
    # Success", MempoolIOError) when the other process is between its claim
    # and its publish: for it they mean "try again" too.
    (p_mempool.EmptyError, p_mempool.MempoolIOError),
    (p_ring.EmptyError, p_ring.RingError),
    (p_ring.FullError, p_ring.RingError),
    # pyshm's Ring takes its flags positionally.
    lambda count, mem: p_ring.Ring(count, 0, shm=mem),
)


def mempool_case(lib):
    def run(n):
        mem, pool, ring = lib.objects()
        get, put = pool.get, pool.put

        def loop():
            for _ in range(n):
                put(get())

        secs = timed(loop)
        del mem, ring
        return secs

    return run


def ring_case(lib):
    def run(n):
        mem, pool, ring = lib.objects()
        block = pool.get()
        enq, deq = ring.enqueue, ring.dequeue

        def loop():
            b = block
            for _ in range(n):
                enq(b)
                b = deq(SIZE)

        secs = timed(loop)
        del mem
        return secs

    return run


def pipeline_case(lib):
    pack, unpack = struct.pack_into, struct.unpack_from

    def run(n):
        mem, pool, ring = lib.objects()
        get, put, enq, deq = pool.get, pool.put, ring.enqueue, ring.dequeue

        def loop():
            for i in range(n):
                b = get()
                pack("=q", b, 0, i)
                enq(b)
                b = deq(SIZE)
                unpack("=q", b)
                put(b)

        secs = timed(loop)
        del mem
        return secs

    return run


def fork_case(lib, count):
    pack, unpack = struct.pack_into, struct.unpack_from

    def run(n):
        mem, pool, ring = lib.objects(count)
        get, put, enq, deq = pool.get, pool.put, ring.enqueue, ring.dequeue
        pool_empty, ring_empty, ring_full = lib.pool_empty, lib.ring_empty, lib.ring_full
        go_r, go_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.read(go_r, 1)
                for i in range(n):
                    while True:
                        try:
                            b = get()
                            break
                        except pool_empty:
                            pass
                    pack("=q", b, 0, i)
                    while True:
                        try:
                            enq(b)
                            break
                        except ring_full:
                            pass
                code = 0
            finally:
                os._exit(code)
        start = time.perf_counter()
        os.write(go_w, b"g")
        for i in range(n):
            while True:
                try:
                    b = deq(SIZE)
                    break
                except ring_empty:
                    pass
            if unpack("=q", b)[0] != i:
                raise AssertionError(f"{lib.name}: message {i} out of order")
            put(b)
        secs = time.perf_counter() - start
        _, status = os.waitpid(pid, 0)
        os.close(go_r)
        os.close(go_w)
        if os.waitstatus_to_exitcode(status) != 0:
            raise AssertionError(f"{lib.name}: the producer failed")
        del mem
        return secs

    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="operations per case and round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--fork-count",
        type=int,
        default=16384,
        help="blocks in the pool and entries in the ring of the fork case (on a busy machine "
        "with few CPUs a small ring bounds the work each process does per time slice, and "
        "so the rate, whatever the library)",
    )
    ap.add_argument(
        "--only",
        choices=["mempool", "ring", "pipeline", "fork"],
        action="append",
        help="run only these cases (repeatable)",
    )
    args = ap.parse_args()
    base = PYSHM.name
    print(
        f"{datetime.date.today()}, {platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, n={args.n}, rounds={args.rounds}\n"
    )
    for key, title, make, n in (
        ("mempool", "Mempool get + put (one process)", mempool_case, args.n),
        ("ring", "Ring enqueue + dequeue of one block (one process)", ring_case, args.n),
        ("pipeline", "get, pack, enqueue, dequeue, unpack, put (one process)", pipeline_case, args.n),
        (
            "fork",
            f"producer child → consumer parent across fork, {args.fork_count} blocks (messages/s)",
            lambda lib: fork_case(lib, args.fork_count),
            args.n // 2,
        ),
    ):
        if args.only and key not in args.only:
            continue
        cases = {base: make(PYSHM), "shm": make(SHM)}
        rows = interleave(cases, n, rounds=args.rounds, baseline=base)
        print(table(title, rows, base))


if __name__ == "__main__":
    main()
