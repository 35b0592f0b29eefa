"""Every object that exports a buffer over shared memory keeps that memory
mapped for as long as anyone references it, whatever was closed, cleaned up
or deleted meanwhile.

NumPy's ``np.ndarray(shape, dtype, buffer=obj)`` releases its buffer at once
and keeps only ``obj`` as the array's base, so export counting alone does
not see such an array: the exporter itself must keep the mapping alive.
Each case runs in a child interpreter, where a use after unmap is a
SIGSEGV (exit status -11) instead of a crashed test run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ring_helpers import name, name_factory  # noqa: F401 (fixtures)

np = pytest.importorskip("numpy")


def run_child(code: str) -> None:
    """Runs `code` in a fresh interpreter; it must exit 0 and print 'alive'."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout.strip().endswith("alive 7"), proc.stdout


def test_sharemem_array_outlives_cleanup():
    run_child(
        """
        import numpy as np
        from shm import ShareMem
        mem = ShareMem(1 << 16)
        a = np.ndarray((8,), "u1", buffer=mem)
        mem.cleanup()
        assert mem.closed
        a[0] = 7
        print("alive", a[0])
        """
    )


def test_mempool_block_array_outlives_put_and_cleanup():
    run_child(
        """
        import numpy as np
        from shm import mempool
        mp = mempool.Mempool(2, 4096)
        blk = mp.get()
        a = np.ndarray((8,), "u1", buffer=blk)
        mp.put(blk)
        mp.cleanup()
        del mp
        a[0] = 7
        print("alive", a[0])
        """
    )


def test_write_chunk_array_outlives_producer_and_ring(name):
    run_child(
        f"""
        import numpy as np, shm
        ring = shm.SpscRing.create({name!r}, 4096, dtype="u8")
        tx = ring.producer()
        chunk = tx.write_chunk(8)
        a = np.ndarray((8,), "u8", buffer=chunk)
        chunk.commit()
        tx.close()
        ring.unlink()
        del ring, tx
        a[0] = 7
        print("alive", a[0])
        """
    )


def test_read_chunk_array_outlives_consumer_and_ring(name):
    run_child(
        f"""
        import numpy as np, shm
        ring = shm.SpscRing.create({name!r}, 4096, dtype="u8")
        tx, rx = ring.producer(), ring.consumer()
        tx.push_many(np.full(8, 7, dtype="u8"))
        tx.close()
        chunk = rx.read_chunk(8)
        a = np.ndarray((8,), "u8", buffer=chunk)
        chunk.commit()
        rx.close()
        ring.unlink()
        del ring, rx
        print("alive", a[0])
        """
    )


def test_channel_block_array_outlives_release_and_channel(name):
    run_child(
        f"""
        import numpy as np, shm
        ch = shm.Channel.create({name!r}, 2, 64)
        blk = ch.get()
        a = np.ndarray((8,), "u1", buffer=blk)
        blk.release()
        ch.unlink()
        del ch
        a[0] = 7
        print("alive", a[0])
        """
    )


def test_segment_array_outlives_nothing_it_needs():
    # The segments refuse to unmap while such an array lives (the buffer's
    # exporter is referenced by the array).
    from shm import Memfd

    m = Memfd("shm-test-review", 4096)
    a = np.ndarray((8,), "u1", buffer=m.buf)
    with pytest.raises(BufferError):
        m.close()
    a[0] = 7
    assert a[0] == 7
    del a
    m.close()
    assert m.closed
