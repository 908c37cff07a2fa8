"""Arrays parked in anonymous temporary files while a local computation waits for them.

On the local (threaded) scheduler nothing spills to disk by itself: a result that waits for a
consumer far ahead in the task order stays in RAM. :class:`SpilledArray` keeps its bytes in an
unnamed file in ``tempfile.gettempdir()`` (``TMPDIR``) instead: the kernel writes it back and
reclaims the pages when memory is short, the process's RSS does not hold it, and the file
disappears when the object is collected (also when the computation fails). It pickles as the
plain array, so a graph that holds one still works on a distributed cluster.
"""

from __future__ import annotations

import tempfile

import numpy as np

__all__ = ["SpilledArray"]


class SpilledArray:
    """A NumPy array written to an anonymous temporary file; :meth:`load` reads it back.

    Parameters
    ----------
    arr : the array (written to the file in C order)
    dir : folder for the file; default ``tempfile.gettempdir()`` (put ``TMPDIR`` on a disk,
        not a RAM-backed tmpfs, for the memory to be saved for real)
    """

    __slots__ = ("_file", "shape", "dtype")

    def __init__(self, arr: np.ndarray, dir: str | None = None) -> None:
        arr = np.ascontiguousarray(arr)  # tofile from a strided view goes element by element: 7x slower
        self.shape, self.dtype = arr.shape, arr.dtype
        self._file = tempfile.TemporaryFile(dir=dir)
        arr.tofile(self._file)
        self._file.flush()

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def load(self) -> np.ndarray:
        """The array, read back into a new NumPy array."""
        self._file.seek(0)
        count = int(np.prod(self.shape))
        flat = np.fromfile(self._file, dtype=self.dtype, count=count)
        if flat.size != count:
            raise OSError(f"Expected {count} values in the spill file. Got {flat.size}: it was truncated.")
        return flat.reshape(self.shape)

    def __del__(self) -> None:  # closed on purpose, not left to the collector ("unclosed file" ResourceWarning)
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()

    def __reduce__(self):  # pickled (e.g. sent to a worker): the plain array
        return np.asarray, (self.load(),)

    def __repr__(self) -> str:
        return f"SpilledArray(shape={self.shape}, dtype={self.dtype})"
