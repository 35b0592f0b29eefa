"""The per-call cost of the single-item calls, in one process (no peer, no
waiting): every case is `n` pairs of one push and one pop (or get+send and
recv+release for the channel) on a ring that always has room, interleaved
over a few rounds (harness.interleave). What it measures is the binding's
own overhead per call: argument extraction, borrow flags, fork checks,
encode/decode, error paths not taken.

Run:

    target/py-venv/bin/python crates/shm-py/bench/bench_percall.py [--quick]
"""

from __future__ import annotations

import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

import shm  # noqa: E402


def uniq() -> str:
    return f"/shm-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def main() -> None:
    quick = "--quick" in sys.argv
    n = 30_000 if quick else 300_000
    rounds = 3 if quick else 5

    spsc = shm.SpscRing.create(uniq(), 1024, dtype="u8")
    tx, rx = spsc.producer(), spsc.consumer()
    mpmc = shm.MpmcRing.create(uniq(), 1024, dtype="u8")
    chan = shm.Channel.create(uniq(), 64, 64)

    def spsc_push_pop(k: int) -> float:
        push, pop = tx.push, rx.pop

        def body() -> None:
            for i in range(k):
                push(i)
                pop()

        return harness.timed(body)

    def spsc_blocking(k: int) -> float:
        push, pop = tx.push_blocking, rx.pop_blocking

        def body() -> None:
            for i in range(k):
                push(i)
                pop()

        return harness.timed(body)

    def mpmc_push_pop(k: int) -> float:
        push, pop = mpmc.push, mpmc.pop

        def body() -> None:
            for i in range(k):
                push(i)
                pop()

        return harness.timed(body)

    def mpmc_blocking(k: int) -> float:
        push, pop = mpmc.push_blocking, mpmc.pop_blocking

        def body() -> None:
            for i in range(k):
                push(i)
                pop()

        return harness.timed(body)

    def chan_bytes(k: int) -> float:
        send, recv = chan.send_bytes, chan.recv_bytes
        data = b"x" * 8

        def body() -> None:
            for _ in range(k):
                send(data)
                recv()

        return harness.timed(body)

    def chan_blocks(k: int) -> float:
        get, send, recv = chan.get_blocking, chan.send, chan.recv_blocking

        def body() -> None:
            for _ in range(k):
                send(get(), 8)
                recv().release()

        return harness.timed(body)

    cases = {
        "SpscRing push+pop": spsc_push_pop,
        "SpscRing push_blocking+pop_blocking": spsc_blocking,
        "MpmcRing push+pop": mpmc_push_pop,
        "MpmcRing push_blocking+pop_blocking": mpmc_blocking,
        "Channel send_bytes+recv_bytes": chan_bytes,
        "Channel get_blocking+send+recv_blocking+release": chan_blocks,
    }
    try:
        rows = harness.interleave(cases, n, rounds)
    finally:
        for obj in (tx, rx):
            obj.close()
        for obj in (spsc, mpmc, chan):
            obj.unlink()
    print(f"#### per call pair, one process ({n:,} pairs x {rounds} rounds)\n")
    print("| case | ns per pair (median round) |")
    print("|---|---|")
    for row in rows:
        print(f"| {row['name']} | {1e9 / row['rate']:.0f} |")


if __name__ == "__main__":
    main()
