"""Examples from two projects that this package replaces, run as written
with only the import changed. Adaptations, each marked where it is made:
segment keys and names become random test ones (so that tests never touch
a real segment), Python 2 literals become Python 3 (``0600`` is ``0o600``),
and an HTTP service's routes become local function calls."""

import os
import subprocess
import sys
import textwrap
import uuid

import pytest
import sysv_ipc
from sysv_helpers import key  # noqa: F401 (fixture)


def run(code, *args):
    """Runs `code` in a fresh interpreter (another process); its stdout."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


# A System V wrapper with file-like methods, "Process 1" and "Process 2".
# Adapted: the key 123456 becomes a random test key (passed as argv[1]);
# `from shm_manager import *` becomes an import of shm.SysV under the old name.

SHM_MANAGER_PROCESS_1 = """
import sys
from shm import SysV as shm_manager
segment1 = shm_manager(int(sys.argv[1]), 100)
segment1.write("Hello world!")
"""

SHM_MANAGER_PROCESS_2 = """
import sys
from shm import SysV as shm_manager
segment1 = shm_manager(int(sys.argv[1]), 100, 0o600)
print(repr(segment1.read()))
"""


def test_shm_manager_two_processes(key):
    run(SHM_MANAGER_PROCESS_1, key)
    # As the example's ipcs listing shows: the segment stays, 100 bytes, 600.
    listed = sysv_ipc.SharedMemory(key)
    assert (listed.size, listed.mode & 0o777) == (100, 0o600)
    listed.detach()
    out = run(SHM_MANAGER_PROCESS_2, key)
    assert out.strip() == repr(b"Hello world!" + b"\x00" * 88)


def test_shm_manager_readline_in_one_process(key):
    from shm import SysV as shm_manager

    segment1 = shm_manager(key, 100)
    segment1.write("Hello world!\n")
    segment1.write("Second line\n")
    segment2 = shm_manager(key, 100, 0o600)
    assert segment2.readline() == b"Hello world!\n"
    assert segment2.readline() == b"Second line\n"


# The multiprocessing.shared_memory walkthrough: process_1 creates and writes
# the first byte, process_2 attaches and writes the second to fourth, both
# read the first four and close, process_1 unlinks. Adapted: the name
# 'MyMemory' becomes a random test name; process_2 runs as another process.


@pytest.fixture
def my_memory():
    name = f"shm-test-seed-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        os.unlink(f"/dev/shm/{name}")
    except FileNotFoundError:
        pass


PROCESS_2 = """
import sys
from shm import SharedMemory
shared_mem = SharedMemory(name=sys.argv[1], create=False)
shared_mem.buf[1] = 2
shared_mem.buf[2] = 3
shared_mem.buf[3] = 4
print(shared_mem.buf[0], shared_mem.buf[1], shared_mem.buf[2], shared_mem.buf[3])
shared_mem.close()
"""


def test_shared_memory_walkthrough(my_memory):
    from shm import SharedMemory

    # process_1
    shared_mem = SharedMemory(name=my_memory, size=1024, create=True)
    shared_mem.buf[0] = 1
    # process_2 (another process)
    assert run(PROCESS_2, my_memory).split() == ["1", "2", "3", "4"]
    # process_1 again; the README also reads with `shared_mem[0]`
    data = shared_mem[0]
    assert data == 1
    assert [shared_mem.buf[i] for i in range(4)] == [1, 2, 3, 4]
    shared_mem.close()
    shared_mem.unlink()
    assert not os.path.exists(f"/dev/shm/{my_memory}")


def test_process_2_before_process_1_fails(my_memory):
    with pytest.raises(subprocess.CalledProcessError) as e:
        subprocess.run(
            [sys.executable, "-c", PROCESS_2, my_memory], check=True, capture_output=True, text=True
        )
    assert "FileNotFoundError" in e.value.stderr and my_memory in e.value.stderr


# A Python service over System V (create, stat, write, read, set, remove).
# Adapted: its HTTP routes become these local functions, which return what
# the routes answer; the key 5679 becomes a random test key; the JSON mode
# 666 (decimal there) is 0o666.

import shm  # noqa: E402


def create(shm_key, shm_segsz, mode):
    with shm.SysV(shm_key, shm_segsz, mode=mode, create=True) as seg:
        return {"shm_key": str(seg.key), "shm_shmid": str(seg.id)}


def stat(key, shmid):
    with shm.SysV.from_id(shmid) as seg:
        ds = seg.stat()
    assert ds.key == key
    return {
        "cgid": ds.cgid, "cuid": ds.cuid, "gid": ds.gid, "mode": ds.perms,
        "shm_atime": ds.atime, "shm_cpid": ds.cpid, "shm_ctime": ds.ctime,
        "shm_dtime": ds.dtime, "shm_key": ds.key, "shm_lpid": ds.lpid,
        "shm_nattch": ds.nattch, "shm_segsz": ds.segsz, "shm_shmid": ds.id,
        "uid": ds.uid,
    }


def write(key, shmid, data):
    # "The Read and Write API implementation use Attach and Detach internally."
    with shm.SysV.from_id(shmid) as seg:
        seg.write(data + "\0")
    return {"op": "done"}


def read(key, shmid):
    with shm.SysV.from_id(shmid) as seg:
        return {"data": seg.read().split(b"\0", 1)[0].decode()}


def set_(key, shmid, uid, gid, mode):
    seg = shm.SysV.from_id(shmid)
    seg.uid, seg.gid, seg.mode = uid, gid, mode
    seg.detach()
    return {"op": "done"}


def remove(key, shmid):
    with shm.SysV.from_id(shmid) as seg:
        seg.remove()
    return {"op": "done"}


def test_sysv_service(key):
    made = create(key, 1024, 0o666)
    assert made["shm_key"] == str(key)
    shmid = int(made["shm_shmid"])
    st = stat(key, shmid)
    assert (st["shm_segsz"], st["mode"], st["shm_cpid"]) == (1024, 0o666, os.getpid())
    assert st["shm_nattch"] == 1  # the stat call's own attachment
    assert set(st) == {
        "cgid", "cuid", "gid", "mode", "shm_atime", "shm_cpid", "shm_ctime", "shm_dtime",
        "shm_key", "shm_lpid", "shm_nattch", "shm_segsz", "shm_shmid", "uid",
    }
    assert write(key, shmid, "testdata2") == {"op": "done"}
    assert read(key, shmid) == {"data": "testdata2"}
    # Permissions can change on demand (the service's reason to exist).
    assert set_(key, shmid, os.geteuid(), os.getegid(), 0o600) == {"op": "done"}
    assert stat(key, shmid)["mode"] == 0o600
    theirs = sysv_ipc.SharedMemory(key)
    assert theirs.mode & 0o777 == 0o600
    theirs.detach()
    assert remove(key, shmid) == {"op": "done"}
    with pytest.raises(FileNotFoundError):
        stat(key, shmid)
