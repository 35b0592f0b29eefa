"""shm.SysV: file-like access, create semantics, sysv_ipc-style calls,
IPC_SET, the whole shmid_ds, interop with sysv_ipc both ways, bad input."""

import os
import subprocess
import sys

import pytest
import sysv_ipc

import shm
from sysv_helpers import key  # noqa: F401 (fixture)


@pytest.fixture
def made():
    """Segments made with generated keys, removed afterwards."""
    segs = []
    yield segs
    for s in segs:
        try:
            sysv_ipc.remove_shared_memory(s.id)
        except sysv_ipc.ExistentialError:
            pass


def test_create_or_attach_by_default(key):
    a = shm.SysV(key, 100)
    assert a.created and (a.key, a.size) == (key, 100) and a.attached
    b = shm.SysV(key, 100)
    assert not b.created and b.id == a.id
    c = shm.SysV(key)  # size 0: attach only
    assert c.size == 100


def test_read_write_position(key):
    s = shm.SysV(key, 32)
    assert s.tell() == 0
    assert s.write("Hello world!") == 12
    assert s.tell() == 12
    assert s.write(b"\n2nd\n") == 5
    assert s.write(bytearray(b"x")) == 1
    assert s.write(memoryview(b"yz")[::1]) == 2
    assert s.write(memoryview(b"a-b-")[::2]) == 2  # non-contiguous
    s.seek(0)
    assert s.read(5) == b"Hello"
    assert s.readline() == b" world!\n"
    assert s.readline() == b"2nd\n"
    assert s.readline(2) == b"xy"
    assert s.read() == b"zab" + bytes(32 - 22)
    assert s.read() == b""
    assert s.readline() == b""
    assert s.seek(-3, 2) == 29
    assert s.seek(1, 1) == 30
    assert s.read(100) == b"\0\0"
    s.seek(1000)
    assert s.read() == b""


def test_write_is_all_or_nothing(key):
    s = shm.SysV(key, 8)
    s.seek(5)
    with pytest.raises(ValueError, match="pass the end of the 8-byte region"):
        s.write(b"abcd")
    assert s.tell() == 5
    s.seek(0)
    assert s.read() == bytes(8)
    with pytest.raises(TypeError, match="bytes-like"):
        s.write(12)


def test_create_true_is_exclusive_and_false_only_attaches(key):
    with pytest.raises(FileNotFoundError, match=f"{key:#010x}"):
        shm.SysV(key, 10, create=False)
    with pytest.raises(FileNotFoundError):
        shm.SysV(key)
    a = shm.SysV(key, 10, create=True)
    with pytest.raises(FileExistsError, match=f"{key:#010x}") as e:
        shm.SysV(key, 10, create=True)
    assert e.value.errno == 17
    assert shm.SysV(key, create=False).id == a.id


def test_size_checks(key):
    with pytest.raises(ValueError, match="at least 1 byte"):
        shm.SysV(key, 0, create=True)
    with pytest.raises(ValueError, match="non-negative"):
        shm.SysV(key, -1)
    shm.SysV(key, 10)
    with pytest.raises(ValueError, match="10 bytes, but size=11"):
        shm.SysV(key, 11)


def test_hostile_input(key):
    with pytest.raises(ValueError, match="32-bit"):
        shm.SysV(2**40, 10)
    with pytest.raises((ValueError, OSError)):
        shm.SysV(key, 2**62, create=True)
    with pytest.raises(OverflowError):
        shm.SysV(key, 2**64)
    with pytest.raises(ValueError, match="bits beyond 0o777"):
        shm.SysV(key, 10, mode=0o4777)
    s = shm.SysV(key, 10)
    with pytest.raises(ValueError, match="negative position"):
        s.seek(-1)
    with pytest.raises(ValueError, match="whence"):
        s.seek(0, 3)
    assert s.read(2**62) == bytes(10)
    assert s.tell() == 10


def test_key_none_and_private(made):
    a = shm.SysV(None, 16)
    made.append(a)
    assert a.created and a.key not in (0, -1)
    p = shm.SysV(shm.IPC_PRIVATE, 16)
    made.append(p)
    q = shm.SysV(shm.IPC_PRIVATE, 16)
    made.append(q)
    assert p.key == 0 and p.id != q.id
    with pytest.raises(ValueError, match="create=True or None"):
        shm.SysV(None, 16, create=False)


def test_stat_has_every_field(key):
    s = shm.SysV(key, 100, mode=0o640)
    ds = s.stat()
    assert ds.keys() == [
        "key", "id", "segsz", "uid", "gid", "cuid", "cgid", "mode", "seq",
        "atime", "dtime", "ctime", "cpid", "lpid", "nattch",
    ]
    assert (ds.key, ds.id, ds.segsz) == (key, s.id, 100)
    assert (ds.uid, ds.gid) == (os.geteuid(), os.getegid())
    assert (ds.cuid, ds.cgid) == (os.geteuid(), os.getegid())
    assert ds.mode & 0o777 == 0o640 and ds.perms == 0o640
    assert ds.cpid == os.getpid() and ds.lpid == os.getpid()
    assert ds.nattch == 1 and ds.atime > 0 and ds.ctime > 0
    assert ds["shm_segsz"] == ds["segsz"] == 100
    assert dict(ds)["nattch"] == 1 and len(ds) == 15 and "shm_cpid" in ds
    assert ds._asdict() == dict(ds)
    with pytest.raises(KeyError):
        ds["nope"]
    assert "segsz=100" in repr(ds) and "mode=0o640" in repr(ds)
    theirs = sysv_ipc.SharedMemory(key)
    assert s.stat().nattch == 2
    assert theirs.last_pid == os.getpid() and theirs.size == 100
    theirs.detach()


def test_ipc_set(key):
    s = shm.SysV(key, 10)
    assert s.mode == 0o600
    s.mode = 0o640
    assert s.mode == 0o640 and sysv_ipc.SharedMemory(key).mode & 0o777 == 0o640
    me = os.geteuid()
    s.uid = me
    s.gid = os.getegid()
    assert (s.uid, s.gid) == (me, os.getegid())
    if me == 0:
        s.uid = 12345
        ds = s.stat()
        assert ds.uid == 12345 and ds.cuid == 0  # creator unchanged
    with pytest.raises(ValueError, match="0o1000"):
        s.mode = 0o1000


@pytest.mark.skipif(os.geteuid() == 0, reason="root bypasses IPC permissions")
def test_permission_denied_for_others(key):
    s = shm.SysV(key, 10)
    s.mode = 0
    s.detach()
    with pytest.raises(PermissionError):
        s.attach()


def test_readonly_attach(key):
    s = shm.SysV(key, 10)
    s.write(b"abc")
    r = shm.SysV(key, readonly=True)
    assert r.readonly and r.read(3) == b"abc"
    with pytest.raises(PermissionError, match="read-only"):
        r.write(b"x")
    assert r.buf.readonly
    with pytest.raises(TypeError):
        r.buf[0] = 1
    s.attach(readonly=True)
    assert s.readonly and s.tell() == 3  # position kept
    s.attach()
    assert not s.readonly


def test_detach_attach_and_views(key):
    s = shm.SysV(key, 10)
    view = s.buf[2:4]
    view[0] = 65
    with pytest.raises(BufferError, match="still reference"):
        s.detach()
    with pytest.raises(BufferError):
        s.attach()
    assert s.attached and s.buf[2] == 65
    del view
    s.detach()
    assert not s.attached and "detached" in repr(s)
    with pytest.raises(ValueError, match="not attached"):
        s.read()
    with pytest.raises(ValueError, match="not attached"):
        s.buf
    s.detach()  # twice is fine
    s.attach()
    assert s.read(3) == b"\0\0A"


def test_context_manager_detaches(key):
    with shm.SysV(key, 10) as s:
        s.write(b"x")
    assert not s.attached
    assert shm.SysV(key).read(1) == b"x"  # not removed


def test_remove(key):
    s = shm.SysV(key, 10)
    s.remove()
    assert s.stat().removed and s.stat().key == shm.IPC_PRIVATE
    s.write(b"still")
    with pytest.raises(FileNotFoundError):
        shm.SysV(key)
    s.detach()  # the last attachment: gone now
    with pytest.raises(FileNotFoundError, match=f"shmid {s.id}"):
        s.stat()
    with pytest.raises(FileNotFoundError):
        s.remove()


def test_list_and_from_id(key):
    s = shm.SysV(key, 10)
    listed = [ds for ds in shm.SysV.list() if ds.id == s.id]
    assert len(listed) == 1 and listed[0].key == key and listed[0].segsz == 10
    t = shm.SysV.from_id(s.id)
    assert (t.key, t.size, t.created) == (key, 10, False)
    with pytest.raises(FileNotFoundError):
        shm.SysV.from_id(2**31 - 1)


def test_sysv_ipc_creates_we_attach(key):
    theirs = sysv_ipc.SharedMemory(key, sysv_ipc.IPC_CREX, size=64)
    theirs.write(b"from sysv_ipc", 0)
    ours = shm.SysV(key)
    assert ours.size == theirs.size == 64
    assert ours.read(13) == b"from sysv_ipc"
    ours.write(b"+shm")
    assert theirs.read(17) == b"from sysv_ipc+shm"
    ours.remove()
    theirs.detach()
    with pytest.raises(sysv_ipc.ExistentialError):
        sysv_ipc.SharedMemory(key)


def test_we_create_sysv_ipc_attaches(key):
    ours = shm.SysV(key, 64)
    ours.write("from shm")
    theirs = sysv_ipc.SharedMemory(key)
    assert theirs.size == 64 and theirs.id == ours.id
    assert theirs.read(8) == b"from shm"
    theirs.write(b"!", 8)
    assert bytes(ours.buf[:9]) == b"from shm!"
    assert theirs.mode & 0o777 == 0o600
    theirs.remove()
    theirs.detach()
    assert ours.stat().removed


CHILD = """
import sys, shm
s = shm.SysV(int(sys.argv[1]))
s.seek(0, 2)
s.seek(-5, 1)
s.write(b"child")
"""


def test_another_process(key):
    s = shm.SysV(key, 20)
    subprocess.run([sys.executable, "-c", CHILD, str(key)], check=True)
    s.seek(15)
    assert s.read() == b"child"
    assert s.stat().nattch == 1


def test_read_write_at_an_offset_leave_the_position(key):
    s = shm.SysV(key, 16)
    s.seek(3)
    assert s.write(b"abc", offset=10) == 3
    assert s.read(3, offset=10) == b"abc"
    assert s.read(offset=13) == b"\0\0\0"
    assert s.tell() == 3
    with pytest.raises(ValueError, match="pass the end"):
        s.write(b"abcd", offset=13)
    with pytest.raises(ValueError, match="pass the end"):
        s.read(4, offset=13)
    with pytest.raises(ValueError, match="non-negative"):
        s.read(1, offset=-1)
    # sysv_ipc's argument order works unchanged
    assert s.read(3, 10) == b"abc"
