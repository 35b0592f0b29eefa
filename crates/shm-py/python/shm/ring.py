"""pyshm's ``ring`` module: a lock-free FIFO of blocks in shared memory.

``Ring(count, flags=0, shm=None)`` passes ``shm.mempool`` blocks between
processes: one process ``enqueue``\\ s a block it got from a ``Mempool``,
another ``dequeue``\\ s it (pyshm's ``dequeue(size)`` is accepted too) and
reads the same memory, with no copy. Make the ring and the pool before
``os.fork()``.

Example::

    import os, struct
    from shm import ShareMem, mempool, ring

    mem = ShareMem(1 << 20)
    mp = mempool.Mempool(64, 8, shm=mem)
    r = ring.Ring(64, shm=mem)
    pid = os.fork()
    if pid == 0:
        for i in range(10):
            buf = mp.get()
            struct.pack_into("=q", buf, 0, i)
            r.enqueue(buf)
        os._exit(0)
    os.waitpid(pid, 0)
    for i in range(10):
        buf = r.dequeue(8)
        assert struct.unpack_from("=q", buf) == (i,)
        mp.put(buf)

``EmptyError`` and ``FullError`` are pyshm's names for ``shm.RingEmpty`` and
``shm.RingFull``.
"""

from ._shm import Ring, RingEmpty, RingFull, ShmError

#: pyshm's name for the error ``dequeue`` raises on an empty ring.
EmptyError = RingEmpty
#: pyshm's name for the error ``enqueue`` raises on a full ring.
FullError = RingFull
#: pyshm's base class of the module's errors.
RingError = ShmError

__all__ = ["Ring", "EmptyError", "FullError", "RingError"]
