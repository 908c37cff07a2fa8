"""Mutation-testing gaps in the baselines: scikit-image / scikit-learn as references."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from skimage.filters import threshold_multiotsu

from bigseg.baselines import multiotsu_thresholds


@pytest.mark.parametrize("nbins", [17, 64])
def test_multiotsu_thresholds_equal_skimage_for_floats(nbins):
    rng = np.random.default_rng(3)
    vol = np.concatenate([rng.normal(m, 0.07, 400) for m in (0.1, 0.5, 0.9)]).reshape(10, 12, 10).astype(np.float64)
    rng.shuffle(vol.reshape(-1))
    got = multiotsu_thresholds(da.from_array(vol, chunks=(3, 5, 4)), classes=3, nbins=nbins)
    np.testing.assert_allclose(got, threshold_multiotsu(vol, classes=3, nbins=nbins), rtol=1e-12)
