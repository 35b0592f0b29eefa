"""Shared-memory IPC for Linux, shared with Rust processes.

Segments (``SharedMemory``, ``SysV``, ``ShareMem``, ``Memfd``), lock-free
rings (``SpscRing``, ``MpmcRing``), a block pool and a zero-copy ``Channel``,
with the same layout as the Rust crates of the ``shm`` workspace.
"""

from ._shm import *  # noqa: F401,F403
from ._shm import __version__  # noqa: F401
from . import mempool, ring  # noqa: F401
