"""A Python producer killed with SIGKILL mid-stream loses nothing it
published: the consumer sees a gap-free, duplicate-free prefix of what was
pushed, and a new producer takes the dead one's role over (the Rust crates
reclaim a role whose holder is dead) and continues from where it stopped."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import shm
from ring_helpers import name, name_factory  # noqa: F401 (fixtures)

PRODUCER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import shm
    name, mode = sys.argv[1], sys.argv[2]
    tx = shm.SpscRing.attach(name, dtype="u8").producer()
    print("ready", flush=True)
    i = 0
    while True:
        if mode == "single":
            tx.push_blocking(i)
            i += 1
        else:
            i += tx.push_many(np.arange(i, i + 37, dtype="u8"))
    """
)


@pytest.mark.parametrize("mode", ["single", "bulk"])
def test_killed_producer_loses_nothing(name, mode):
    ring = shm.SpscRing.create(name, 256, dtype="u8")
    rx = ring.consumer()
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", PRODUCER, name, mode], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            got = []
            buf = np.empty(64, dtype="u8")
            # Consume while it produces, then kill it mid-stream.
            while len(got) < 5000:
                n = rx.pop_into(buf)
                got.extend(buf[:n].tolist())
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
        assert child.returncode == -signal.SIGKILL
        # Drain what it published before it died.
        while (n := rx.pop_into(buf)) > 0:
            got.extend(buf[:n].tolist())
        assert got == list(range(len(got))), "a gap or a duplicate"
        assert rx.is_abandoned
        # The role is taken over; the ring goes on from the tail.
        with ring.producer() as tx:
            # It starts at the dead producer's tail: all it published was taken.
            assert tx.position == rx.position
            tx.push(12345)
        assert rx.pop() == 12345


def test_killed_consumer_role_is_taken_over(name):
    ring = shm.SpscRing.create(name, 16, dtype="u8")
    tx = ring.producer()
    for i in range(10):
        tx.push(i)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, shm, time\n"
            "rx = shm.SpscRing.attach(sys.argv[1]).consumer()\n"
            "print(rx.pop(), rx.pop(), flush=True)\n"
            "time.sleep(600)\n",
            name,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().split() == ["0", "1"]
        with pytest.raises(shm.ShmError, match="consumer role is held by live process"):
            ring.consumer()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    rx = ring.consumer()
    assert [rx.pop() for _ in range(9)] == list(range(2, 10)) + [None]
