"""Classical segmenters inside a field of view: statistics from the inside, 255 outside."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from skimage.filters import threshold_multiotsu

import bigseg.baselines as bb
from bigseg.errors import InputError

from ._phantom import iou, phantom


@pytest.fixture(scope="module")
def rec():
    truth, grey = phantom((24, 48, 56), seed=1)
    yy, xx = np.ogrid[:48, :56]
    inside = (yy - 23.5) ** 2 + (xx - 27.5) ** 2 <= 22 ** 2
    return truth, np.where(inside, grey, np.nan).astype(np.float32), inside


def test_threshold_from_the_inside(rec):
    truth, grey, inside = rec
    out = bb.threshold(da.from_array(grey, chunks=(9, 17, 23)), fov="auto")
    th = threshold_multiotsu(grey[:, inside], classes=3)
    np.testing.assert_allclose(out.attrs["thresholds"], th, rtol=1e-6)
    lab = out.values
    assert (lab[:, ~inside] == 255).all()
    np.testing.assert_array_equal(lab[:, inside], np.digitize(grey[:, inside], th, right=True))
    assert out.attrs["fov_inside_fraction"] == pytest.approx(inside.mean())


@pytest.mark.parametrize("method", ["threshold", "watershed", "kmeans"])
def test_other_segmenters_label_only_the_inside(rec, method):
    truth, grey, inside = rec
    lab = getattr(bb, method)(da.from_array(grey, chunks=(9, 17, 23)), fov="auto").values
    assert (lab[:, ~inside] == 255).all() and (lab[:, inside] < 3).all()

    def mean_iou(x):
        return np.mean([iou(truth[:, inside], x[:, inside], k) for k in range(3)])

    whole = getattr(bb, method)(phantom((24, 48, 56), seed=1)[1]).values  # the sample without any fill
    flat = getattr(bb, method)(np.nan_to_num(grey)).values  # the zero fill read as the sample
    if method == "kmeans":  # its Sobel feature still sees the fill at the rim
        assert mean_iou(lab) > mean_iou(flat) + 0.05
    else:
        assert mean_iou(lab) == pytest.approx(mean_iou(whole), abs=0.02)


def test_random_forest_inside(rec):
    truth, grey, inside = rec
    sparse = np.full(truth.shape, 255, np.uint8)
    sparse[::6] = truth[::6]
    lab = bb.random_forest(grey, sparse, fov=inside, n_estimators=20).values
    assert (lab[:, ~inside] == 255).all()
    assert min(iou(truth[:, inside], lab[:, inside], k) for k in range(3)) > 0.6


def test_nan_inside_the_field_of_view_is_refused(rec):
    _, grey, inside = rec
    bad = grey.copy()
    bad[3, 24, 28] = np.nan
    with pytest.raises(InputError, match=r"finite values only in `fov`. Got 1 NaN \S+ \S+ \S+ \S+ \(of \d+\) instead.$"):
        bb.threshold(bad, fov=inside)
    for segmenter in (bb.threshold, bb.kmeans):  # NaN outside without a field of view: the way named
        with pytest.raises(InputError, match=r"finite values only.*field of view\? Segment inside it \(fov='auto'"):
            segmenter(grey)
