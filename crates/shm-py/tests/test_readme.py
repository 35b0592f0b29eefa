"""The README's Python taste runs as written (with test names for its
segments) and leaves nothing behind."""

import os
import pathlib
import random
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[3] / "README.md"


def python_taste() -> str:
    text = README.read_text()
    section = text[text.index("\n## Python\n") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_taste_runs():
    tag = f"shm-test-readme-{os.getpid()}-{random.getrandbits(32):08x}"
    key = random.randrange(0x10000000, 0x7FFFFFFF)
    code = python_taste().replace('"/demo', f'"/{tag}').replace("0x1234", hex(key))
    before = set(os.listdir("/dev/shm"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    left = set(os.listdir("/dev/shm")) - before
    # Clean up whatever a failure left, then report.
    for name in left:
        os.unlink(os.path.join("/dev/shm", name))
    subprocess.run(["ipcrm", "-M", hex(key)], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert "b'hello'" in out.stdout
    assert "b'Hello world!'" in out.stdout
    assert not left, f"the README taste left {sorted(left)} in /dev/shm"
