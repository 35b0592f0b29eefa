"""Interleaved timing for the Python benchmarks: every case runs once per
round, rounds alternate the cases, and the report gives each case's median
rate and its ratio to a baseline as median (min-max) over the rounds.

Machines here are shared and noisy: comparing cases inside one round, then
taking the median of those ratios, is steadier than timing each alone.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

# A case runs `n` operations and returns the seconds they took (so that it
# can leave setup and process start-up out of the timing).
Case = Callable[[int], float]


def interleave(cases: dict[str, Case], n: int, rounds: int = 5, baseline: str | None = None) -> list[dict]:
    """Runs every case `rounds` times, interleaved; returns one row per case:
    name, median ops/s, and the median, min and max of its per-round ratio to
    `baseline` (the first case when not given). A ratio above 1 is faster."""
    names = list(cases)
    baseline = baseline or names[0]
    rates: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        # Rotate the order each round so no case always runs first.
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            secs = cases[name](n)
            rates[name].append(n / secs if secs > 0 else float("inf"))
    rows = []
    for name in names:
        ratios = [a / b for a, b in zip(rates[name], rates[baseline])]
        rows.append(
            {
                "name": name,
                "rate": statistics.median(rates[name]),
                "ratio": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
            }
        )
    return rows


def timed(fn: Callable[[], None]) -> float:
    """Seconds that `fn()` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def table(title: str, rows: list[dict], baseline: str) -> str:
    """A Markdown table of `interleave`'s rows."""
    out = [f"#### {title}", "", f"| case | ops/s (median) | vs {baseline} (median, min–max) |", "|---|---|---|"]
    for row in rows:
        out.append(
            f"| {row['name']} | {row['rate']:,.0f} | {row['ratio']:.2f}× ({row['min']:.2f}–{row['max']:.2f}) |"
        )
    return "\n".join(out) + "\n"
