"""Rings across os.fork(): a ring created before the fork is shared, each
process takes its own role; a role handle the child inherits is inert
there (the Rust crates' ForkEpoch): every operation raises shm.ShmError
instead of silently moving data, and dropping it keeps the parent's role."""

import os

import numpy as np

import shm
from ring_helpers import name, name_factory  # noqa: F401 (fixtures)

N = 10000


def run_child(fn) -> int:
    """Runs `fn()` in a forked child; returns its exit code (0: passed)."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = fn()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_child_produces_parent_consumes(name):
    ring = shm.SpscRing.create(name, 64, dtype="u8")

    def child():
        tx = ring.producer()
        for i in range(0, N, 10):
            done = 0
            while done < 10:
                done += tx.push_many(np.arange(i + done, i + 10, dtype="u8"))
        return 0

    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = child()
        finally:
            os._exit(code)
    rx = ring.consumer()
    got = [rx.pop_blocking(timeout=60) for _ in range(N)]
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert got == list(range(N))
    # The child exited: its role is gone, end of stream.
    assert rx.pop_blocking(timeout=10) is None


def test_inherited_roles_are_inert(name):
    ring = shm.SpscRing.create(name, 8, dtype="u8")
    tx, rx = ring.producer(), ring.consumer()
    tx.push(1)

    def child():
        checks = [
            lambda: tx.push(2),
            lambda: tx.push_many(np.zeros(1, dtype="u8")),
            lambda: tx.write_chunk(1),
            lambda: rx.pop(),
            lambda: rx.pop_into(np.zeros(1, dtype="u8")),
        ]
        for i, check in enumerate(checks):
            try:
                check()
                return 10 + i  # moved data silently
            except shm.ShmError as e:
                if "inherited across fork" not in str(e):
                    return 20 + i
        if not (tx.is_inert and rx.is_inert):
            return 30
        # The parent, alive, still holds both roles.
        for take in (ring.producer, ring.consumer):
            try:
                take()
                return 40
            except shm.ShmError as e:
                if f"held by live process {os.getppid()}" not in str(e):
                    return 41
        tx.close()  # drops the inherited handle: keeps the parent's role
        return 0

    assert run_child(child) == 0
    assert not tx.is_inert
    tx.push(3)
    assert [rx.pop(), rx.pop(), rx.pop()] == [1, 3, None]
    with_role_taken = False
    try:
        ring.producer()
    except shm.ShmError:
        with_role_taken = True
    assert with_role_taken  # the child's drop did not give it back


def test_mpmc_handles_work_in_the_child(name):
    ring = shm.MpmcRing.create(name, 64, dtype="i8")

    def child():
        for i in range(N):
            ring.push_blocking(-i, timeout=60)
        return 0

    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            code = child()
        finally:
            os._exit(code)
    got = [ring.pop_blocking(timeout=60) for _ in range(N)]
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert got == [-i for i in range(N)]
