"""The shipped type stubs (python/shm/_shm.pyi) match the native module:
mypy's stubtest compares every class, method, signature and default."""

import importlib.util
import pathlib
import subprocess
import sys

import pytest

import shm

HERE = pathlib.Path(__file__).parent


def test_stubs_ship_with_the_package():
    package = pathlib.Path(shm.__file__).parent
    assert (package / "_shm.pyi").is_file()
    assert (package / "py.typed").is_file()


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed")
def test_stubs_match_the_native_module(tmp_path):
    # Run outside the source tree, so that the installed package (with its
    # stubs) is the one checked.
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "shm._shm", "--allowlist", str(HERE / "stubtest_allowlist.txt")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
