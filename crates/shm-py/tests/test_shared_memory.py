"""shm.SharedMemory: the stdlib's interface, its security defaults, interop
with multiprocessing.shared_memory both ways, no resource tracker, and
close() that refuses while views are alive."""

import os
import pickle
import stat
import subprocess
import sys
import uuid
from multiprocessing import resource_tracker
from multiprocessing import shared_memory as stdlib_shm

import pytest

import shm


def dev_shm(name):
    return os.path.join("/dev/shm", name.lstrip("/"))


@pytest.fixture
def name():
    """A fresh stdlib-style name; whatever has it is unlinked afterwards."""
    n = f"shm-test-py-{uuid.uuid4().hex[:12]}"
    yield n
    try:
        os.unlink(dev_shm(n))
    except FileNotFoundError:
        pass


@pytest.fixture
def made():
    """Segments with generated names, unlinked afterwards."""
    segs = []
    yield segs
    for s in segs:
        try:
            os.unlink(dev_shm(s.name))
        except FileNotFoundError:
            pass


def stdlib_untracked(**kw):
    """The stdlib's SharedMemory, unregistered from its resource tracker
    (Python < 3.13 registers every attach, and its tracker would unlink the
    segment when this process exits: cpython#82300)."""
    s = stdlib_shm.SharedMemory(**kw)
    resource_tracker.unregister("/" + s.name, "shared_memory")
    return s


def test_create_attach_roundtrip(name):
    a = shm.SharedMemory(name, create=True, size=100)
    assert (a.name, a.size, a.created) == (name, 100, True)
    a.buf[:5] = b"hello"
    b = shm.SharedMemory(name)
    assert (b.name, b.size, b.created) == (name, 100, False)
    assert bytes(b.buf[:5]) == b"hello"
    assert len(b.buf) == 100
    b.buf[99] = 7
    assert a.buf[99] == 7
    b.close()
    a.close()
    a.unlink()
    assert not os.path.exists(dev_shm(name))


def test_random_name_and_leading_slash(made, name):
    a = shm.SharedMemory(create=True, size=10)
    made.append(a)
    assert a.name.startswith("psm_") and "/" not in a.name
    assert os.path.exists(dev_shm(a.name))
    b = shm.SharedMemory("/" + a.name)
    assert b.name == a.name
    b.close()
    a.close()
    c = shm.SharedMemory("/" + name, create=True, size=1)
    assert c.name == name
    c.close()


def test_mode_is_0600_whatever_the_umask(name):
    old = os.umask(0)
    try:
        s = shm.SharedMemory(name, create=True, size=64)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(dev_shm(name)).st_mode) == 0o600
    s.close()


def test_explicit_mode(name):
    s = shm.SharedMemory(name, create=True, size=64, mode=0o640)
    assert stat.S_IMODE(os.stat(dev_shm(name)).st_mode) == 0o640
    s.close()
    with pytest.raises(ValueError, match="0o1777"):
        shm.SharedMemory(name + "x", create=True, size=64, mode=0o1777)


def test_create_is_exclusive(name):
    a = shm.SharedMemory(name, create=True, size=10)
    with pytest.raises(FileExistsError, match=name) as e:
        shm.SharedMemory(name, create=True, size=10)
    assert e.value.errno == 17
    a.close()


def test_attach_missing(name):
    with pytest.raises(FileNotFoundError, match=name) as e:
        shm.SharedMemory(name)
    assert e.value.errno == 2


def test_bad_arguments(name):
    with pytest.raises(ValueError, match="'size' must be a positive number"):
        shm.SharedMemory(name, create=True, size=0)
    with pytest.raises(ValueError, match="non-negative"):
        shm.SharedMemory(name, create=True, size=-1)
    with pytest.raises(ValueError, match="'name' can only be None"):
        shm.SharedMemory()
    for bad in ("a/b", "x" * 300, "", "/", ".."):
        with pytest.raises(ValueError, match="invalid segment name"):
            shm.SharedMemory(bad, create=True, size=1)
    with pytest.raises(ValueError, match="NUL"):
        shm.SharedMemory("a\0b", create=True, size=1)
    assert not os.path.exists(dev_shm(name))


def test_attach_checks_a_given_size(name):
    a = shm.SharedMemory(name, create=True, size=100)
    assert shm.SharedMemory(name, size=50).size == 100  # smaller: fine, true size
    with pytest.raises(ValueError, match="100 bytes, but size=101"):
        shm.SharedMemory(name, size=101)
    a.close()


def test_hostile_size_leaves_nothing(name):
    with pytest.raises((OSError, ValueError)):
        shm.SharedMemory(name, create=True, size=2**62)
    assert not os.path.exists(dev_shm(name))
    with pytest.raises(OverflowError):
        shm.SharedMemory(name, create=True, size=2**64)


def test_close_refuses_while_a_view_lives(name):
    s = shm.SharedMemory(name, create=True, size=64)
    view = s.buf[8:16]
    with pytest.raises(BufferError, match=f"cannot close POSIX segment /{name}: 1 object"):
        s.close()
    # Still usable: nothing was unmapped.
    view[0] = 42
    assert s.buf[8] == 42
    view.release()
    s.close()
    assert s.closed
    with pytest.raises(ValueError, match="closed"):
        s.buf
    s.close()  # twice is fine


def test_a_kept_buf_blocks_close_until_dropped(name):
    # The stdlib releases a kept s.buf in close(); we refuse instead, since
    # whoever keeps it (a variable, a NumPy array's base) would be left over
    # unmapped memory.
    s = shm.SharedMemory(name, create=True, size=16)
    b = s.buf
    b[0] = 1
    assert s.buf is b
    with pytest.raises(BufferError, match="1 object"):
        s.close()
    del b
    s.close()


@pytest.mark.parametrize("how", ["ndarray", "frombuffer"])
def test_numpy_array_blocks_close(name, how):
    # np.ndarray(buffer=...) releases the buffer at once and keeps only the
    # exporter as its base: the stdlib's close() unmaps under such an array
    # (a crash at its next access). Ours refuses.
    np = pytest.importorskip("numpy")
    s = shm.SharedMemory(name, create=True, size=8 * 16)
    if how == "ndarray":
        arr = np.ndarray((16,), dtype=np.int64, buffer=s.buf)
    else:
        arr = np.frombuffer(s.buf, dtype=np.int64)
    arr[:] = np.arange(16)
    with pytest.raises(BufferError, match="still reference"):
        s.close()
    assert arr[15] == 15  # still mapped
    other = shm.SharedMemory(name)
    assert np.frombuffer(other.buf, dtype=np.int64)[5] == 5
    del arr
    s.close()
    other.close()


def test_not_itself_a_buffer_like_the_stdlib(name):
    s = shm.SharedMemory(name, create=True, size=8)
    with pytest.raises(TypeError):
        memoryview(s)
    m = memoryview(s.buf)  # a view of the view: counted as well
    with pytest.raises(BufferError):
        s.close()
    m.release()
    s.close()


def test_indexing_and_context_manager(name):
    with shm.SharedMemory(name, create=True, size=4) as s:
        s[0] = 9
        assert s[0] == 9 and s.buf[0] == 9
        s[1:3] = b"ab"
        assert bytes(s.buf[:3]) == b"\x09ab"
    assert s.closed
    assert os.path.exists(dev_shm(name))  # closed, not unlinked


def test_repr_and_pickle(name):
    s = shm.SharedMemory(name, create=True, size=10)
    assert repr(s) == f"SharedMemory('{name}', size=10)"
    t = pickle.loads(pickle.dumps(s))
    assert (t.name, t.size, t.created) == (name, 10, False)
    t.close()
    s.close()
    assert repr(s).endswith("closed)")


def test_unlink_twice_and_after_close(name):
    s = shm.SharedMemory(name, create=True, size=10)
    s.close()
    s.unlink()
    with pytest.raises(FileNotFoundError, match=name):
        s.unlink()


def test_unlink_keeps_mappings_valid(name):
    s = shm.SharedMemory(name, create=True, size=10)
    s.unlink()
    s.buf[0] = 5
    assert s.buf[0] == 5
    s.close()


def test_track_keyword_is_accepted(name):
    s = shm.SharedMemory(name, create=True, size=10, track=False)
    s.close()


def test_stdlib_creates_we_attach(name):
    theirs = stdlib_untracked(name=name, create=True, size=100)
    try:
        theirs.buf[:6] = b"stdlib"
        ours = shm.SharedMemory(name)
        assert ours.size == 100
        assert bytes(ours.buf[:6]) == b"stdlib"
        ours.buf[6:10] = b"+shm"
        assert bytes(theirs.buf[:10]) == b"stdlib+shm"
        ours.close()
        ours.unlink()  # ours unlinks what the stdlib made
        with pytest.raises(FileNotFoundError):
            stdlib_untracked(name=name)
    finally:
        theirs.close()


def test_we_create_stdlib_attaches(name):
    ours = shm.SharedMemory(name, create=True, size=4096)
    ours.buf[:3] = b"shm"
    theirs = stdlib_untracked(name=name)
    assert theirs.size == ours.size == 4096
    assert bytes(theirs.buf[:3]) == b"shm"
    theirs.buf[3:6] = b"lib"
    assert bytes(ours.buf[:6]) == b"shmlib"
    theirs.close()
    theirs.unlink()  # the stdlib unlinks what we made
    with pytest.raises(FileNotFoundError):
        shm.SharedMemory(name)
    ours.close()


CHILD = """
import sys, shm
s = shm.SharedMemory(sys.argv[1])
s.buf[0] = 99
s.close()
"""


def test_a_child_that_attaches_and_exits_unlinks_nothing(name):
    """cpython#82300: the stdlib's resource tracker unlinks a segment when a
    process that merely attached it exits. Ours has no tracker."""
    s = shm.SharedMemory(name, create=True, size=10)
    subprocess.run([sys.executable, "-c", CHILD, name], check=True)
    assert os.path.exists(dev_shm(name))
    assert s.buf[0] == 99
    again = shm.SharedMemory(name)
    again.close()
    s.close()


def _mp_child(seg):
    seg.buf[1] = 77
    seg.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_child_gets_it_pickled_and_unlinks_nothing(name, method):
    import multiprocessing

    ctx = multiprocessing.get_context(method)
    s = shm.SharedMemory(name, create=True, size=10)
    p = ctx.Process(target=_mp_child, args=(s,))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert s.buf[1] == 77
    assert os.path.exists(dev_shm(name))
    s.close()
