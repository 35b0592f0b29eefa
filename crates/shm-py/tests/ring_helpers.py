"""Helpers of the ring and channel tests: unique POSIX names that are
removed after each test (also on failure), and the Rust peer programs."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import uuid

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]


def unique(tag: str) -> str:
    """A fresh `/shm-test-...` name."""
    return f"/shm-test-py-{tag}-{os.getpid()}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def name_factory():
    """Makes unique names; unlinks whatever of them is left at teardown."""
    made: list[str] = []

    def make(tag: str = "ring") -> str:
        n = unique(tag)
        made.append(n)
        return n

    yield make
    for n in made:
        try:
            os.unlink("/dev/shm" + n)
        except FileNotFoundError:
            pass


@pytest.fixture
def name(name_factory) -> str:
    return name_factory()


def target_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


def rust_example(package: str, example: str) -> pathlib.Path:
    """Builds `cargo build -p package --example example` (debug) and
    returns the binary; skips the test where cargo is missing."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not installed: no Rust peer")
    subprocess.run(
        [cargo, "build", "-q", "-p", package, "--example", example],
        cwd=REPO,
        check=True,
    )
    path = target_dir() / "debug" / "examples" / example
    assert path.exists(), path
    return path
