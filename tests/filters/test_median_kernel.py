"""The compiled 3x3x3 selection network equals scipy.ndimage.median_filter bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from bigseg.kernels import filters as K
from bigseg.kernels._median import median3


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.uint16, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 5, 2), (3, 3, 3), (9, 17, 33)])
def test_median3_dtypes_shapes(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    a = (rng.random(shape) * 100 - (0 if np.dtype(dtype).kind == "u" else 50)).astype(dtype)
    out = K.median(a)  # int64 goes to scipy, the others through the compiled network
    assert out.dtype == a.dtype and out.shape == a.shape
    np.testing.assert_array_equal(out, ndi.median_filter(a, size=3))
    if dtype != np.int64:
        np.testing.assert_array_equal(median3(a), out)
    else:
        with pytest.raises(TypeError, match="int64"):
            median3(a)


def test_median3_ties_binary_and_inf():
    rng = np.random.default_rng(7)
    for levels in (2, 3):
        a = rng.integers(0, levels, (20, 21, 22)).astype(np.float32)
        np.testing.assert_array_equal(median3(a), ndi.median_filter(a, 3))
    a = rng.random((10, 11, 12)).astype(np.float32)
    a[rng.random(a.shape) < 0.2] = np.inf
    a[rng.random(a.shape) < 0.2] = -np.inf
    np.testing.assert_array_equal(median3(a), ndi.median_filter(a, 3))
    b = rng.random((6, 7, 8)) < 0.5
    np.testing.assert_array_equal(K.median(b), ndi.median_filter(b, 3))


def test_kernel_dispatch_falls_back_on_nan_and_other_sizes():
    a = np.random.default_rng(8).random((7, 8, 9), dtype=np.float32)
    np.testing.assert_array_equal(K.median(a, (3, 1, 3)), ndi.median_filter(a, (3, 1, 3)))
    a[3, 3, 3] = np.nan
    np.testing.assert_array_equal(K.median(a), ndi.median_filter(a, 3))
