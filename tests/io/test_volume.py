"""as_volume: what every public function takes (DataArray, dask or NumPy array), refused by name."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import bigseg.filters as bf
from bigseg.errors import InputError
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
