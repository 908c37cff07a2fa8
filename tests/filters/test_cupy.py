"""CuPy blocks run on the GPU through cupyx.scipy.ndimage and match the CPU path."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi

cp = pytest.importorskip("cupy")
try:
    if cp.cuda.runtime.getDeviceCount() < 1:  # pragma: no cover - depends on the machine
        pytest.skip("no CUDA device", allow_module_level=True)
except Exception:  # pragma: no cover - no driver
    pytest.skip("no CUDA device", allow_module_level=True)

import bigseg.filters as bf  # noqa: E402
from bigseg.kernels import filters as K  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.fixture
def vol():
    return np.random.default_rng(0).random((33, 40, 47), dtype=np.float32)


def _gpu(a, chunks):
    return da.from_array(a, chunks=chunks).map_blocks(cp.asarray, meta=cp.empty((0, 0, 0), a.dtype))


def test_median_gpu_equals_cpu(vol):
    out = bf.median(_gpu(vol, (17, 23, 30)), nan_policy="propagate").data.compute()
    assert isinstance(out, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(out), ndi.median_filter(vol, 3))


def test_gaussian_unsharp_gpu_match_cpu(vol):
    g = bf.gaussian(_gpu(vol, (10, 40, 20)), sigma=1.1, nan_policy="propagate").data.compute()
    np.testing.assert_allclose(cp.asnumpy(g), ndi.gaussian_filter(vol, 1.1), rtol=1e-5, atol=1e-5)
    u = bf.unsharp(_gpu(vol, 16), radius=3, amount=0.6, nan_policy="propagate").data.compute()
    np.testing.assert_allclose(cp.asnumpy(u), K.unsharp(vol, (3, 3, 3), 0.6), rtol=1e-5, atol=1e-5)


def test_align_gpu_matches_cpu(vol):
    ser = np.stack([vol, ndi.shift(vol, (1.5, -2.0, 0.5), order=1, mode="nearest")])
    gpu = da.from_array(ser, chunks=(1, 17, 23, 30)).map_blocks(cp.asarray, meta=cp.empty((0, 0, 0, 0), ser.dtype))
    out = bf.align(gpu)
    cpu = bf.align(ser)
    np.testing.assert_allclose(out.attrs["shifts"], cpu.attrs["shifts"], atol=1e-6)
    got = out.data.compute()
    assert isinstance(got, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(got), cpu.values, rtol=1e-5, atol=1e-5)
