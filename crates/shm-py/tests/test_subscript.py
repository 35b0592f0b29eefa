"""seg[i], seg[a:b] and their assignments on SharedMemory and SysV (mmap's
semantics: ints and bytes copies), and SharedMemory.read/write(n, offset)."""

import mmap
import os
import uuid

import pytest

import shm
from sysv_helpers import free_key, remove_key

SIZE = 64


@pytest.fixture(params=["posix", "sysv"])
def seg(request):
    """A SharedMemory or a SysV of SIZE bytes, removed afterwards."""
    if request.param == "posix":
        name = f"shm-test-sub-{uuid.uuid4().hex[:12]}"
        s = shm.SharedMemory(name, create=True, size=SIZE)
        request.addfinalizer(lambda: os.path.exists(f"/dev/shm/{name}") and os.unlink(f"/dev/shm/{name}"))
        request.addfinalizer(lambda: s.closed or s.close())
    else:
        key = free_key()
        s = shm.SysV(key, SIZE, create=True)
        request.addfinalizer(lambda: remove_key(key))
        request.addfinalizer(lambda: s.attached and s.detach())
    return s


def close(s):
    if isinstance(s, shm.SysV):
        s.detach()
    else:
        s.close()


def fill(s):
    """Random contents, also kept in a bytearray (the model)."""
    data = os.urandom(SIZE)
    s[:] = data
    return bytearray(data)


SLICES = [
    slice(None),
    slice(3, 10),
    slice(-5, None),
    slice(None, -60),
    slice(10, 3),
    slice(50, 1000),
    slice(-1000, 5),
    slice(1000, 2000),
    slice(None, None, 2),
    slice(1, 40, 7),
    slice(None, None, -1),
    slice(40, 2, -3),
    slice(-1, -1000, -5),
]


@pytest.mark.parametrize("sl", SLICES, ids=repr)
def test_getitem_slices_like_bytes(seg, sl):
    model = fill(seg)
    got = seg[sl]
    assert type(got) is bytes
    assert got == bytes(model[sl])


@pytest.mark.parametrize("sl", SLICES, ids=repr)
def test_setitem_slices_like_bytearray(seg, sl):
    model = fill(seg)
    value = os.urandom(len(model[sl]))
    seg[sl] = value
    model[sl] = value
    assert seg[:] == bytes(model)


@pytest.mark.parametrize("i", [0, 1, SIZE - 1, -1, -SIZE])
def test_int_index(seg, i):
    model = fill(seg)
    assert seg[i] == model[i]
    seg[i] = 255 - model[i]
    assert seg[i] == 255 - model[i]


@pytest.mark.parametrize("i", [SIZE, -SIZE - 1, 2**70, -(2**70)])
def test_int_index_out_of_range(seg, i):
    with pytest.raises(IndexError, match="out of range"):
        seg[i]
    with pytest.raises(IndexError, match="out of range"):
        seg[i] = 1


def test_index_types(seg):
    import numpy as np

    seg[np.int64(3)] = 7  # anything with __index__
    assert seg[np.int32(3)] == 7
    with pytest.raises(TypeError, match="integers or slices"):
        seg[1.0]
    with pytest.raises(TypeError, match="integers or slices"):
        seg["a"] = 1


@pytest.mark.parametrize("value, exc", [(256, ValueError), (-1, ValueError), (b"a", TypeError), (1.5, TypeError)])
def test_item_value_must_be_a_byte(seg, value, exc):
    with pytest.raises(exc):
        seg[0] = value


def test_slice_assignment_takes_any_buffer(seg):
    seg[0:4] = bytearray(b"abcd")
    seg[4:8] = memoryview(b"efgh")
    seg[8:12] = mmap_bytes = memoryview(b"xxijklxx")[2:6]
    assert mmap_bytes == b"ijkl"
    import array

    seg[12:20] = array.array("i", [1, 2])  # 8 raw bytes
    seg[20:23] = memoryview(b"a-b-c")[::2]  # strided: gathered
    assert seg[0:12] == b"abcdefghijkl"
    assert seg[12:20] == array.array("i", [1, 2]).tobytes()
    assert seg[20:23] == b"abc"
    # its own memory (overlapping), as source
    seg[1:5] = seg.buf[0:4]
    assert seg[0:5] == b"aabcd"


def test_slice_assignment_refuses_str(seg):
    with pytest.raises(TypeError, match="bytes-like"):
        seg[0:2] = "ab"
    with pytest.raises(TypeError):
        seg[0:2] = 5


@pytest.mark.parametrize("sl", [slice(0, 4), slice(0, 8, 2), slice(60, 70)], ids=repr)
def test_slice_assignment_wrong_size_raises_like_mmap(seg, sl):
    before = seg[:]
    m = mmap.mmap(-1, SIZE)
    with pytest.raises(IndexError):
        m[sl] = b"abc"
    with pytest.raises(IndexError, match="wrong size"):
        seg[sl] = b"abc"
    assert seg[:] == before  # nothing written


def test_delete_refused(seg):
    with pytest.raises((TypeError, NotImplementedError)):
        del seg[0]
    with pytest.raises((TypeError, NotImplementedError)):
        del seg[0:2]


def test_closed_raises_value_error(seg):
    close(seg)
    with pytest.raises(ValueError):
        seg[0]
    with pytest.raises(ValueError):
        seg[0:2]
    with pytest.raises(ValueError):
        seg[0:2] = b"ab"
    with pytest.raises(ValueError):
        seg[0] = 1


def test_sysv_read_only_refuses_writes():
    s = shm.SysV(None, SIZE)
    try:
        s[0:3] = b"abc"
        s.detach()
        s.attach(readonly=True)
        assert s[0:3] == b"abc" and s[0] == ord("a")
        with pytest.raises(PermissionError, match="read-only"):
            s[0:3] = b"xyz"
        with pytest.raises(PermissionError, match="read-only"):
            s[0] = 1
        assert s[0:3] == b"abc"
    finally:
        s.detach()
        s.remove()


def test_sysv_subscript_leaves_the_position():
    seg = shm.SysV(None, SIZE)
    try:
        seg.seek(5)
        seg[0:10] = bytes(10)
        seg[0:10]
        assert seg.tell() == 5
    finally:
        seg.detach()
        seg.remove()


def test_subscript_holds_no_view(seg):
    seg[0:4]
    seg[0:4] = b"abcd"
    close(seg)  # no BufferError: the results are copies


@pytest.fixture
def posix(request):
    name = f"shm-test-sub-{uuid.uuid4().hex[:12]}"
    s = shm.SharedMemory(name, create=True, size=SIZE)
    yield s
    if not s.closed:
        s.close()
    s.unlink()


def test_shared_memory_read_write(posix):
    seg = posix
    model = fill(seg)
    assert seg.read(5, 10) == bytes(model[10:15])
    assert seg.read() == bytes(model)
    assert seg.read(None, 60) == bytes(model[60:])
    assert seg.read(-1, 60) == bytes(model[60:])
    assert seg.read(0, SIZE) == b""
    assert seg.write(b"hello", 10) == 5
    assert seg.write("é", 0) == 2  # str as UTF-8, like SysV.write
    assert seg.write(bytearray(b"xy"), offset=SIZE - 2) == 2
    assert seg[10:15] == b"hello" and seg[0:2] == "é".encode() and seg[-2:] == b"xy"
    with pytest.raises(ValueError):
        seg.read(5, SIZE - 2)
    with pytest.raises(ValueError):
        seg.write(b"abc", SIZE - 2)
    assert seg[-2:] == b"xy"  # all or nothing
    with pytest.raises(ValueError, match="offset"):
        seg.read(1, -1)
    with pytest.raises(ValueError, match="offset"):
        seg.write(b"a", -1)
    seg.close()
    with pytest.raises(ValueError):
        seg.read(1)
    with pytest.raises(ValueError):
        seg.write(b"a")
