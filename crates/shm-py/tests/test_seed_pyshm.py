"""pyshm's README example, run as written with only the import line changed
(``from pyshm import ...`` became ``from shm import ...``)."""

import os
import struct


def test_readme_example():
    # --- pyshm's README, usage 1 and 2 (imports: `pyshm` -> `shm`) ---
    from shm import ShareMem

    test_shm = ShareMem(64*1024*1024) # 64M

    from shm import mempool
    count = 4
    mp = mempool.Mempool(count, 4, shm=test_shm)

    pid = os.fork()
    if pid == 0:
        for i in range(count):
            buf = mp.get()
            struct.pack_into("=i", buf, 0, i)
            mp.put(buf)
        # Adaptation for pytest: the child must not return into the test
        # runner (the README's script simply ends here).
        os._exit(0)
    else:
        cid, status = os.wait()
        assert pid == cid
        for i in range(count):
            buf = mp.get()
            v, = struct.unpack_from("=i", buf)
            assert v == i
        mp.cleanup()
    # --- end of the README's code ---
    assert os.waitstatus_to_exitcode(status) == 0
