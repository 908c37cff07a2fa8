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
