"""Arrays parked in anonymous temporary files."""

from __future__ import annotations

import gc
import os
import pickle

import numpy as np
import pytest

from bigseg.runtime._spill import SpilledArray


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.float64])
def test_round_trip_of_a_strided_view(dtype):
    base = np.arange(2 * 30 * 20 * 10).reshape(2, 30, 20, 10).astype(dtype)
    view = base[:, 5:17, ::3, 2:]  # not contiguous
    s = SpilledArray(view)
    assert s.shape == view.shape and s.dtype == view.dtype and s.nbytes == view.nbytes
    out = s.load()
    np.testing.assert_array_equal(out, view)
    assert out.flags.c_contiguous and not np.shares_memory(out, base)
    np.testing.assert_array_equal(s.load(), view)  # loads again


def test_empty_array_and_pickle_as_plain_array(tmp_path):
    assert SpilledArray(np.zeros((0, 4), np.float32), dir=str(tmp_path)).load().shape == (0, 4)
    a = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    back = pickle.loads(pickle.dumps(SpilledArray(a)))
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, a)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc (Linux)")
def _files_in(folder) -> list[str]:
    """This process's open files in ``folder`` (a count of all its descriptors moves with other
    threads' files: a test worker's dask threads)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor, another thread's)
            continue
        if target.startswith(str(folder)):
            out.append(target)
    return out


def test_file_is_anonymous_and_closed_when_collected(tmp_path):
    s = SpilledArray(np.ones((64, 64), np.float32), dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # unnamed: nothing to clean up after a crash
    assert len(_files_in(tmp_path)) == 1
    del s
    gc.collect()
    assert _files_in(tmp_path) == []


def test_collected_without_a_resource_warning(tmp_path):
    # the file is closed on purpose when the piece is collected: no "unclosed file" warning
    # (one per piece after every segment() in `python -W default`, pytest, notebooks showing them)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = SpilledArray(np.ones((8, 8), np.float32), dir=str(tmp_path))
        del s
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert _files_in(tmp_path) == []
