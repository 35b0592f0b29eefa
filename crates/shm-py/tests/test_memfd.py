"""shm.Memfd: seals, resize, read-only remap, and descriptor passing
between processes with send_fd/recv_fd."""

import os
import socket
import subprocess
import sys
import tempfile

import pytest

import shm


def test_create_map_and_fileno():
    with shm.Memfd("shm-test-memfd", 4096) as m:
        assert (m.name, m.size) == ("shm-test-memfd", 4096)
        m.buf[:5] = b"hello"
        assert os.fstat(m.fileno()).st_size == 4096
        assert os.pread(m.fileno(), 5, 0) == b"hello"
        assert os.readlink(f"/proc/self/fd/{m.fileno()}").startswith("/memfd:shm-test-memfd")
        assert m.seals == shm.F_SEAL_SHRINK  # always sealed against shrinking
        assert "size=4096" in repr(m)
    assert m.closed and "closed" in repr(m)
    with pytest.raises(ValueError, match="closed"):
        m.fileno()
    m.close()  # twice is fine


def test_bad_input():
    with pytest.raises(ValueError, match="at least 1 byte"):
        shm.Memfd("x", 0)
    with pytest.raises(ValueError, match="non-negative"):
        shm.Memfd("x", -5)
    with pytest.raises(ValueError, match="249 bytes"):
        shm.Memfd("x" * 300, 1)
    with pytest.raises((OSError, ValueError)):
        shm.Memfd("huge", 2**62)
    m = shm.Memfd("x", 16)
    with pytest.raises(ValueError, match="unknown seal"):
        m.add_seals("glue")
    with pytest.raises(ValueError, match="no F_SEAL"):
        m.add_seals(0x100)
    with pytest.raises(TypeError, match="seal name"):
        m.add_seals(1.5)
    m.close()


def test_seals_by_name_bits_and_list():
    m = shm.Memfd("x", 4096, seals="grow")
    assert m.seals & shm.F_SEAL_GROW
    with pytest.raises(PermissionError):
        m.resize(8192)
    with pytest.raises(PermissionError, match="shrinking"):
        m.resize(100)
    m.add_seals([shm.F_SEAL_SEAL, "F_SEAL_GROW"])
    assert m.seals == shm.F_SEAL_SEAL | shm.F_SEAL_SHRINK | shm.F_SEAL_GROW
    with pytest.raises(PermissionError):
        m.add_seals("write")
    assert m.buf.readonly is False  # still mapped read-write
    m.close()


def test_resize_remaps():
    m = shm.Memfd("x", 4096)
    m.buf[0] = 1
    view = m.buf
    with pytest.raises(BufferError):
        m.resize(8192)
    del view
    m.resize(8192)
    assert m.size == 8192 and len(m.buf) == 8192 and m.buf[0] == 1
    m.close()


def test_seal_write_remaps_read_only():
    m = shm.Memfd("x", 4096)
    m.buf[:3] = b"abc"
    view = m.buf[0:3]
    with pytest.raises(BufferError):
        m.add_seals("write")
    assert not m.seals & shm.F_SEAL_WRITE
    view.release()
    m.add_seals("write")
    assert m.seals & shm.F_SEAL_WRITE and m.buf.readonly
    assert bytes(m.buf[:3]) == b"abc"
    with pytest.raises(TypeError):
        m.buf[0] = 1
    with pytest.raises(PermissionError):
        os.pwrite(m.fileno(), b"x", 0)
    m.close()


def test_seal_write_while_another_writable_mapping_exists():
    m = shm.Memfd("x", 4096)
    other = shm.Memfd.from_fd(m.fileno())
    with pytest.raises(OSError, match="another writable mapping") as e:
        m.add_seals("write")
    assert e.value.errno == 16
    assert not m.buf.readonly  # mapped again as before
    other.close()
    m.add_seals("write")
    m.close()


def test_from_fd_refuses_what_is_no_memfd():
    with tempfile.TemporaryFile() as f:
        f.write(b"x" * 10)
        f.flush()
        with pytest.raises(shm.ShmError, match="not a memfd"):
            shm.Memfd.from_fd(f)
    a, b = socket.socketpair()
    with pytest.raises(shm.ShmError, match="not a regular file"):
        shm.Memfd.from_fd(a)
    a.close()
    b.close()
    with pytest.raises(OSError) as e:
        shm.Memfd.from_fd(999)
    assert e.value.errno == 9  # EBADF
    with pytest.raises(TypeError, match="file descriptor"):
        shm.Memfd.from_fd("nope")


def test_from_fd_duplicates():
    m = shm.Memfd("dup", 64)
    fd = os.dup(m.fileno())
    r = shm.Memfd.from_fd(fd)
    os.close(fd)  # ours to close; r has its own
    m.buf[0] = 5
    assert r.buf[0] == 5 and r.name == "dup" and r.fileno() != fd
    r.close()
    m.close()


def test_send_recv_in_process():
    a, b = socket.socketpair()
    with a, b:
        m = shm.Memfd("passed", 4096)
        m.buf[:4] = b"ping"
        shm.send_fd(a, m)
        fd = shm.recv_fd(b, timeout=5)
        r = shm.Memfd.from_fd(fd)
        os.close(fd)
        assert bytes(r.buf[:4]) == b"ping"
        r.buf[:4] = b"pong"
        assert bytes(m.buf[:4]) == b"pong"
        shm.send_fd(a.fileno(), m.fileno())  # ints work too
        os.close(shm.recv_fd(b.fileno()))
        r.close()
        m.close()


def test_recv_timeout_and_eof():
    a, b = socket.socketpair()
    with pytest.raises(TimeoutError, match="not ready: timed out"):
        shm.recv_fd(b, timeout=0.05)
    with pytest.raises(ValueError, match="timeout"):
        shm.recv_fd(b, timeout=-1)
    a.sendall(b"x")  # data but no descriptor
    with pytest.raises(OSError, match="no descriptor"):
        shm.recv_fd(b, timeout=1)
    a.close()
    with pytest.raises(EOFError, match="peer closed"):
        shm.recv_fd(b, timeout=1)
    b.close()


def test_send_fd_over_a_non_socket():
    r, w = os.pipe()
    with pytest.raises(OSError) as e:
        shm.send_fd(w, r)
    assert e.value.errno == 88  # ENOTSOCK
    os.close(r)
    os.close(w)


CHILD_RECEIVES = """
import os, socket, sys, shm
sock = socket.socket(fileno=int(sys.argv[1]))
fd = shm.recv_fd(sock, timeout=30)
m = shm.Memfd.from_fd(fd)
os.close(fd)
assert bytes(m.buf[:6]) == b"parent"
m.buf[:5] = b"child"
m.close()
sock.sendall(b"k")
"""

CHILD_SENDS = """
import socket, sys, shm
sock = socket.socket(fileno=int(sys.argv[1]))
m = shm.Memfd("from-child", 100)
m.buf[:5] = b"hello"
m.add_seals(["write", "grow", "seal"])
shm.send_fd(sock, m)
sock.recv(1)  # wait until the parent has it
"""


def test_pass_a_memfd_to_another_process():
    a, b = socket.socketpair()
    m = shm.Memfd("to-child", 4096)
    m.buf[:6] = b"parent"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_RECEIVES, str(b.fileno())], pass_fds=[b.fileno()]
    )
    b.close()
    shm.send_fd(a, m)
    assert a.recv(1) == b"k"
    assert child.wait(60) == 0
    assert bytes(m.buf[:6]) == b"childt"
    a.close()
    m.close()


def test_receive_a_sealed_memfd_from_another_process():
    a, b = socket.socketpair()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_SENDS, str(b.fileno())], pass_fds=[b.fileno()]
    )
    b.close()
    fd = shm.recv_fd(a, timeout=60)
    m = shm.Memfd.from_fd(fd)
    os.close(fd)
    a.sendall(b"k")
    assert child.wait(60) == 0
    assert m.name == "from-child" and m.size == 100
    assert m.buf.readonly and bytes(m.buf[:5]) == b"hello"
    assert m.seals & shm.F_SEAL_WRITE and m.seals & shm.F_SEAL_SEAL
    m.close()
    a.close()


def test_fork_child_receives():
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the child: receive, write, exit without pytest's cleanup
        code = 1
        try:
            a.close()
            fd = shm.recv_fd(b, timeout=30)
            m = shm.Memfd.from_fd(fd)
            m.buf[0] = 42
            m.close()
            code = 0
        finally:
            os._exit(code)
    b.close()
    m = shm.Memfd("forked", 64)
    shm.send_fd(a, m)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert m.buf[0] == 42
    m.close()
    a.close()


@pytest.mark.parametrize("timeout", [1e300, float("inf")])
def test_huge_timeouts_wait_as_none_does(timeout):
    # A timeout too large for a deadline waits for ever (it used to panic
    # converting 1e300 s to a Duration; inf was a ValueError, unlike the
    # rings' blocking calls).
    a, b = socket.socketpair()
    with a, b, shm.Memfd("shm-test-timeout", 16) as m:
        shm.send_fd(a, m, timeout=timeout)
        fd = shm.recv_fd(b, timeout=timeout)
        os.close(fd)
