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


class _Counting:
    """A stored array that records which stored chunks each read touches."""

    def __init__(self, z):
        self.z, self.shape, self.chunks, self.dtype = z, z.shape, z.chunks, z.dtype
        self.touched: list[tuple[int, ...]] = []

    def __getitem__(self, sel):
        self.touched += list(itertools.product(*[range(s.start // c, (s.stop - 1) // c + 1) for s, c in zip(sel, self.chunks)]))
        return self.z[sel]


def test_next_block_along_x_reuses_the_chunks_read_whole(volume):
    # blocks as predict makes them: aligned with the stored chunks (10 along x), each region
    # reaching 5 voxels into the next block (the overhang)
    src = _Counting(_store(volume, (8, 7, 10)))
    ref = np.pad(volume, PADS)
    before = PADS[2][0]
    for i in range(5):
        lo, hi = (3, 5, 10 * i + before), (20, 19, min(10 * i + before + 15, 57))
        src.touched.clear()
        got = _read_region(src, lo, hi, PADS, tag=("t", i), after=("t", i - 1) if i else None)
        np.testing.assert_array_equal(got, ref[tuple(map(slice, lo, hi))])
        columns = {c[2] for c in src.touched}
        assert columns == ({i, i + 1} if i == 0 else {i + 1})  # column i: kept from the read before
        assert len(src.touched) == len(set(src.touched))  # each stored chunk read at most once
    # another tag, or none: nothing is reused, and the result is the same
    src.touched.clear()
    got = _read_region(src, (3, 5, 34), (20, 19, 49), PADS, tag=("u", 0), after=("t", 99))
    np.testing.assert_array_equal(got, ref[3:20, 5:19, 34:49])
    assert {c[2] for c in src.touched} == {3, 4}
