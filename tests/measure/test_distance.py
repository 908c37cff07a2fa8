"""`kernels.distance.euclidean_distance` (edt for isotropic voxels) equals SciPy's transform."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from bigseg.kernels.distance import euclidean_distance


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (2.0, 2.0, 2.0), (0.7, 0.7, 0.7), (1.0, 0.6, 0.6)])
def test_equals_scipy(spacing):
    rng = np.random.default_rng(3)
    for shape in [(23, 31, 17), (1, 40, 40), (6, 6, 6)]:
        for p in (0.0, 0.03, 0.5, 0.97, 1.0):
            mask = ndi.binary_opening(rng.random(shape) < p) if 0 < p < 1 and min(shape) > 2 else rng.random(shape) < p
            ref = ndi.distance_transform_edt(mask, sampling=spacing)
            got = euclidean_distance(mask, spacing)
            assert got.dtype == np.float64
            if spacing[0] in (0.7,):  # s * sqrt(n) vs sqrt(n * s^2): the last bit may differ
                np.testing.assert_allclose(got, ref, rtol=1e-15, atol=0)
            else:
                np.testing.assert_array_equal(got, ref)
    assert euclidean_distance(np.zeros((3, 4, 5), bool), (1, 1, 1)).max() == 0
