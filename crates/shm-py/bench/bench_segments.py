"""Plain segment reads and writes from Python: one write then one read of
`size` bytes at an offset, many times, with this package's SysV and SharedMemory
(read/write with an offset, `seg[a:b]` slicing, SysV's file-like
seek+write+seek+read, SharedMemory.buf slicing), against sysv_ipc.SharedMemory.read/write, posix_ipc + mmap
slicing, and the stdlib's SharedMemory.buf slicing.

Usage: python bench_segments.py [--quick]
Prints one Markdown table per size (see harness.py for the method).
"""

from __future__ import annotations

import mmap
import os
import random
import sys
import time
from multiprocessing import shared_memory as stdlib_shm

import posix_ipc
import sysv_ipc

sys.path.insert(0, os.path.dirname(__file__))
from harness import interleave, table  # noqa: E402

import shm  # noqa: E402

SEG = 1 << 16
OFFSET = 4096 + 128


def cases(size: int, made: list) -> dict:
    data = os.urandom(size)
    end = OFFSET + size
    key = random.randint(0x10000, 0x7FFFFFFF)

    ours_sysv = shm.SysV(key, SEG, create=True)
    made.append(ours_sysv.remove)
    theirs_sysv = sysv_ipc.SharedMemory(None, sysv_ipc.IPC_CREX, size=SEG)
    made.append(theirs_sysv.remove)

    name = f"shm-bench-{os.getpid()}-{size}"
    ours_posix = shm.SharedMemory(name, create=True, size=SEG)
    made.append(ours_posix.unlink)

    pname = f"/shm-bench-pipc-{os.getpid()}-{size}"
    pipc = posix_ipc.SharedMemory(pname, posix_ipc.O_CREX, size=SEG)
    pmap = mmap.mmap(pipc.fd, SEG)
    pipc.close_fd()
    made.append(pipc.unlink)

    std = stdlib_shm.SharedMemory(create=True, size=SEG)
    made.append(std.unlink)  # also unregisters it from the resource tracker

    def offset_rw(obj):
        """sysv_ipc's calls: `write(data, offset)`, then `read(size, offset)`."""

        def run(n):
            w, r = obj.write, obj.read
            t = time.perf_counter()
            for _ in range(n):
                w(data, OFFSET)
                r(size, OFFSET)
            return time.perf_counter() - t

        return run

    def ours_sysv_seek(n):
        s = ours_sysv
        t = time.perf_counter()
        for _ in range(n):
            s.seek(OFFSET)
            s.write(data)
            s.seek(OFFSET)
            s.read(size)
        return time.perf_counter() - t

    def slicing(s):
        """Write, then read back, by subscript (`s[a:b] = data`, `s[a:b]`)."""

        def run(n):
            t = time.perf_counter()
            for _ in range(n):
                s[OFFSET:end] = data
                s[OFFSET:end]
            return time.perf_counter() - t

        return run

    def buf_slicing(buf):
        """The same through a memoryview, copied out with `bytes`."""

        def run(n):
            t = time.perf_counter()
            for _ in range(n):
                buf[OFFSET:end] = data
                bytes(buf[OFFSET:end])
            return time.perf_counter() - t

        return run

    def close():
        for obj in (ours_sysv.detach, theirs_sysv.detach, ours_posix.close, pmap.close, std.close):
            obj()

    made.append(close)
    return {
        "sysv_ipc read/write(offset)": offset_rw(theirs_sysv),
        "shm.SysV read/write(offset)": offset_rw(ours_sysv),
        "shm.SysV seek+write+seek+read": ours_sysv_seek,
        "shm.SysV[a:b] slicing": slicing(ours_sysv),
        "shm.SharedMemory read/write(offset)": offset_rw(ours_posix),
        "shm.SharedMemory[a:b] slicing": slicing(ours_posix),
        "shm.SharedMemory buf slicing": buf_slicing(ours_posix.buf),
        "stdlib SharedMemory buf slicing": buf_slicing(std.buf),
        "posix_ipc + mmap slicing": slicing(pmap),
    }


def main() -> None:
    quick = "--quick" in sys.argv
    n = 20_000 if quick else 200_000
    rounds = 3 if quick else 7
    for size in (64, 4096):
        made: list = []
        try:
            cs = cases(size, made)
            base = "sysv_ipc read/write(offset)"
            rows = interleave(cs, n, rounds=rounds, baseline=base)
            print(table(f"{size} B write + read at offset {OFFSET} ({n:,} pairs × {rounds} rounds)", rows, base))
        finally:
            for undo in reversed(made):
                try:
                    undo()
                except Exception:  # cleanup: the segment may be gone already
                    pass


if __name__ == "__main__":
    main()
