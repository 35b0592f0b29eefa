"""pyshm's ``mempool`` module: fixed-size blocks in shared memory.

``Mempool(count, size, flags=0, shm=None)`` makes ``count`` blocks of
``size`` bytes, in a ``shm.ShareMem`` or in an anonymous mapping of its own;
make it before ``os.fork()`` and both processes share it. ``get()`` returns
a writable buffer (a ``MempoolBlock``), ``put(block)`` gives it back; free
blocks come back first in, first out.

Example (pyshm's README, with ``from shm import ...``)::

    import os, struct
    from shm import ShareMem, mempool

    test_shm = ShareMem(64 * 1024 * 1024)
    count = 4
    mp = mempool.Mempool(count, 4, shm=test_shm)
    pid = os.fork()
    if pid == 0:
        for i in range(count):
            buf = mp.get()
            struct.pack_into("=i", buf, 0, i)
            mp.put(buf)
        os._exit(0)
    else:
        cid, status = os.wait()
        for i in range(count):
            buf = mp.get()
            v, = struct.unpack_from("=i", buf)
            assert v == i
        mp.cleanup()

``EmptyError`` is pyshm's name for ``shm.PoolEmpty`` (raised by ``get`` when
no block is free).
"""

from ._shm import Mempool, MempoolBlock, PoolEmpty, ShmError

#: pyshm's name for the error ``get`` raises when no block is free.
EmptyError = PoolEmpty
#: pyshm's base class of the module's errors.
MempoolError = ShmError

__all__ = ["Mempool", "MempoolBlock", "EmptyError", "MempoolError"]
