"""Helpers of the System V tests: a random key that no segment uses, and
the removal of whatever segments carry it afterwards (also on failure)."""

from __future__ import annotations

import random

import pytest
import sysv_ipc


def free_key() -> int:
    """A random key (never IPC_PRIVATE) that no segment uses now."""
    while True:
        k = random.randint(0x10000, 0x7FFFFFFF)
        try:
            sysv_ipc.SharedMemory(k)
        except sysv_ipc.ExistentialError:
            return k


def remove_key(key: int) -> None:
    """Removes every segment with `key` (a removed segment whose key is still
    attached somewhere keeps it until detached)."""
    while True:
        try:
            sysv_ipc.SharedMemory(key).remove()
        except sysv_ipc.ExistentialError:
            return


@pytest.fixture
def key():
    """A random free key; any segment with it is removed afterwards."""
    k = free_key()
    yield k
    remove_key(k)
