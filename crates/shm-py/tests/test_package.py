"""The package imports, and its exceptions have the documented shape."""

import shm


def test_version_and_exceptions():
    assert shm.__version__.count(".") == 2
    assert issubclass(shm.RingEmpty, shm.ShmError)
    assert issubclass(shm.RingFull, shm.ShmError)
    assert issubclass(shm.ShmError, Exception)
