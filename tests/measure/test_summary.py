"""summary(): the same numbers as the separate functions, from one graph."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from bigseg.errors import InputError
from bigseg.measure import interfaces, scores, summary, volume_fractions


@pytest.mark.parametrize("method", ["faces", "marching_cubes"])
def test_summary_equals_separate_calls(labels, method):
    pred = np.roll(labels, 1, axis=1)
    lab = da.from_array(pred, chunks=(17, 23, 30))
    ds = summary(lab, truth=da.from_array(labels, chunks=(9, 48, 13)), method=method)
    xr.testing.assert_identical(ds.volume_fraction.reset_coords(drop=True),
                                volume_fractions(pred).reset_coords(drop=True))
    ref = interfaces(pred, method=method)
    np.testing.assert_array_equal(ds.faces.values, ref.faces.values)
    np.testing.assert_allclose(ds.area.values, ref.area.values, rtol=1e-9)
    sc = scores(labels, pred)
    np.testing.assert_array_equal(ds.iou.values, sc.iou.values)
    assert ds.accuracy.item() == sc.accuracy.item()


def test_summary_without_truth_and_bad_truth(labels):
    ds = summary(labels)
    assert "iou" not in ds and "faces" in ds and "volume_fraction" in ds
    with pytest.raises(InputError, match=r"`labels` to have the shape of `truth`"):
        summary(labels, truth=labels[:-1])


def test_summary_matches_a_truth_s_phases_by_name():
    """Was: the truth read in the labels' names by label value: a truth storing the same phases
    in another order scored pore and active 0 (scores() said 1)."""
    rng = np.random.default_rng(4)
    pred = xr.DataArray(da.from_array(rng.integers(0, 3, (10, 12, 14)).astype(np.uint8), chunks=(7, 5, 11)),
                        dims=("z", "y", "x"), attrs={"phases": ["pore", "cbd", "active"]})
    flipped = pred.copy(data=(2 - pred.data).astype(np.uint8))  # the same voxels, phases stored the other way round
    flipped.attrs["phases"] = ["active", "cbd", "pore"]
    ds = summary(pred, truth=flipped, profile="z")
    assert list(ds.phase.values) == ["pore", "cbd", "active"]
    np.testing.assert_array_equal(ds.iou.values, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(ds.truth_volume_fraction_profile.values, ds.volume_fraction_profile.values)
    unnamed = pred.copy()
    unnamed.attrs = {}  # the labels state no names: they take the truth's
    assert list(summary(unnamed, truth=flipped).phase.values) == ["active", "cbd", "pore"]
    other = flipped.copy()
    other.attrs["phases"] = ["a", "b", "c"]
    with pytest.raises(InputError, match="to name the same phases"):
        summary(pred, truth=other)
    np.testing.assert_array_equal(summary(pred, truth=other, phases=["pore", "cbd", "active"]).iou.values,
                                  scores(other, pred, phases=["pore", "cbd", "active"]).iou.values)
