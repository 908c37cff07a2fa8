"""predict's region reads from a zarr store (one z-row of stored chunks at a time): zero
padding and any position give exactly the padded volume's values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import zarr

from bigseg.infer._predict import _read_region

PADS = [(2, 3), (0, 1), (4, 0)]


@pytest.fixture(scope="module")
def volume():
    return np.random.default_rng(0).random((37, 29, 53), dtype=np.float32)


def _store(x, chunks):
    z = zarr.create_array(store={}, shape=x.shape, chunks=chunks, dtype="f4")
    z[:] = x
    return z


@pytest.mark.parametrize("chunks", [(8, 7, 10), (16, 29, 13), (37, 29, 53)])
def test_any_region_equals_the_padded_volume(volume, chunks):
    z, ref = _store(volume, chunks), np.pad(volume, PADS)
    for lo0, lo1, lo2 in itertools.product(range(0, 40, 9), range(0, 30, 13), range(0, 57, 5)):
        lo = (lo0, lo1, lo2)
        hi = (min(lo0 + 12, 42), min(lo1 + 14, 30), min(lo2 + 15, 57))
        np.testing.assert_array_equal(_read_region(z, lo, hi, PADS), ref[tuple(map(slice, lo, hi))])
