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

    def push_pop(push, pop):
        """`push(i)` then `pop()`, k times: one call pair per item."""

        def run(k: int) -> float:
            def body() -> None:
                for i in range(k):
                    push(i)
                    pop()

            return harness.timed(body)

        return run

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
        "SpscRing push+pop": push_pop(tx.push, rx.pop),
        "SpscRing push_blocking+pop_blocking": push_pop(tx.push_blocking, rx.pop_blocking),
        "MpmcRing push+pop": push_pop(mpmc.push, mpmc.pop),
        "MpmcRing push_blocking+pop_blocking": push_pop(mpmc.push_blocking, mpmc.pop_blocking),
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
