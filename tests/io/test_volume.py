"""as_volume: what every public function takes (DataArray, dask or NumPy array), refused by name."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import bigseg.filters as bf
from bigseg.errors import InputError
from bigseg import io, open_volume, save_labels, save_volume
from bigseg.io import as_volume


@pytest.mark.parametrize("wrap", [np.asarray, lambda a: da.from_array(a, chunks=3),
                                  lambda a: xr.DataArray(a, dims=("z", "y", "x"))])
def test_big_endian_comes_back_native_and_equal(wrap):
    a = np.arange(4 * 5 * 6, dtype=">f8").reshape(4, 5, 6)
    vol = as_volume(wrap(a))
    assert vol.dtype == np.float64 and vol.dtype.isnative
    np.testing.assert_array_equal(vol.values, a)
    assert a.dtype == ">f8"  # the input is never modified


@pytest.mark.parametrize("dims, hint", [
    (("a", "z", "y", "x"), "vol.rename({'a': 't'})"),
    (("a", "b", "c"), "vol.rename({'a': 'z', 'b': 'y', 'c': 'x'})"),
])
def test_unknown_dims_get_a_rename_that_fits(dims, hint):
    """The hint was vol.rename({'x': 'x', ...}) for a 4D array without t."""
    v = xr.DataArray(np.zeros((2,) * len(dims), np.float32), dims=dims)
    with pytest.raises(InputError, match=r"dims to be named z, y, x") as e:
        bf.median(v)
    assert hint in str(e.value)


def test_a_dim_named_c_is_no_channel_when_x_is_missing():
    """A 3D (a, b, c) array given where a series is wanted was told to pick one channel."""
    v = xr.DataArray(np.zeros((2, 3, 4), np.float32), dims=("a", "b", "c"))
    with pytest.raises(InputError, match=r"Expected `vol` to be a 4D volume\. Got dims \('a', 'b', 'c'\)") as e:
        bf.align(v)
    assert "channel" not in str(e.value)


def test_the_dimensions_a_volume_may_have_read_as_a_list(tmp_path):
    import bigseg

    with pytest.raises(InputError, match=r"Expected `data` to be a 3D, 4D or 5D array. Got shape \(4, 5\)"):
        bigseg.save_volume(np.zeros((4, 5)), tmp_path / "unused.ome.zarr", progress=False)
    assert not (tmp_path / "unused.ome.zarr").exists()


def test_one_slice_is_refused_with_the_way_to_keep_it_a_volume():
    """``vol.isel(z=3)`` drops the z axis: the error says that a list keeps it, and the slice
    then measures as a volume one voxel thick (so does a NumPy slice given an axis)."""
    import bigseg

    labels = bigseg.synth.electrode((8, 12, 10), seed=1, chunks=5)
    with pytest.raises(InputError, match=r"dims \('y', 'x'\).*one slice: pick it with a list.*\.isel\(z=\[k\]\)"):
        bigseg.measure.volume_fractions(labels.isel(z=3))
    with pytest.raises(InputError, match=r"\.isel\(x=\[k\]\) rather than \.isel\(x=k\)"):
        bigseg.measure.volume_fractions(labels.isel(x=3))
    with pytest.raises(InputError, match=r"Got shape \(12, 10\) instead: a slice is a volume one voxel thick as "
                                         r"labels\[None\] \(shape \(1, 12, 10\)\)"):
        bigseg.measure.volume_fractions(labels.values[3])
    want = np.bincount(labels.values[3].ravel(), minlength=3) / labels.values[3].size
    np.testing.assert_allclose(bigseg.measure.volume_fractions(labels.isel(z=[3])).values, want)
    np.testing.assert_allclose(bigseg.measure.volume_fractions(labels.values[3][None]).values, want)
    with pytest.raises(InputError) as err:  # a 2D array that is no slice of a volume: no such advice
        as_volume(xr.DataArray(np.zeros((4, 5)), dims=("y", "x")), name="vol")
    assert "slice" not in str(err.value)
    with pytest.raises(InputError) as err:
        bigseg.filters.align(np.zeros((4, 5)))  # 4D wanted: a slice is no series either
    assert "slice" not in str(err.value)


@pytest.mark.parametrize("call, match", [
    (lambda img: open_volume(img, level=None), r"`level` to be a non-negative integer. Got None"),
    (lambda img: open_volume(img, level="3"), r"`level` to be a non-negative integer. Got '3'"),
    (lambda img: io.volume_info(5), r"`path` to be a path .*Got 5 instead"),
    (lambda img: io.volume_info(img, stats="no"), r"`stats` to be True or False. Got 'no'"),
    (lambda img: save_labels(np.zeros((3, 4, 5), np.uint8), img, instances="no", progress=False),
     r"`instances` to be True or False. Got 'no'"),
], ids=["open-level-none", "open-level-text", "info-path-int", "info-stats-text", "save_labels-instances-text"])
def test_argument_sweep_refuses_by_name(tmp_path, call, match):
    """From the argument sweep: `open_volume(level=None)` and `volume_info(5)` were Python's
    TypeError from inside; `volume_info(stats="no")` and `save_labels(instances="no")` ran as if
    True. Each now an InputError naming the argument and its value; nothing is written."""
    img = save_volume(np.zeros((3, 4, 5), np.float32), tmp_path / "img.ome.zarr", progress=False)
    with pytest.raises(InputError, match=match):
        call(img)
    assert not (tmp_path / "img.ome.zarr" / "labels").exists()
