"""Gaps a mutation-testing audit of bigseg.synth found: each test fails on a seeded mistake that
the rest of the suite let through, checked against the same volume computed in one block."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from bigseg.kernels.xct import halo
from bigseg.synth import physics, xct


@pytest.fixture(scope="module")
def labels():
    rng = np.random.default_rng(11)
    return rng.integers(0, 3, (14, 17, 15)).astype(np.uint8)


def test_chunks_smaller_than_the_halo_come_back_as_the_labels_chunks(labels):
    assert halo(physics("nano-ct-phase")) > 4
    small = da.from_array(labels, chunks=(4, 5, 6))
    out = xct(small, seed=3)
    assert out.data.chunks == small.chunks  # uneven, enlarged chunks would not go to zarr as they are
    np.testing.assert_allclose(out.values, xct(labels, seed=3).values, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("bits", "dtype"), [(None, np.float32), (8, np.uint8), (16, np.uint16)])
def test_the_lazy_dtype_is_the_computed_one(labels, bits, dtype):
    """A writer sizes its store by the lazy dtype: uint16 values said uint8 were stored wrapped."""
    out = xct(da.from_array(labels, chunks=8), seed=1, bits=bits)
    assert out.dtype == dtype and out.values.dtype == dtype
    series = xct(da.from_array(np.stack([labels, labels]), chunks=(1, 8, 9, 8)), seed=1, bits=bits)
    assert series.dtype == dtype and series.values.dtype == dtype
    from bigseg.synth import electrode

    generated = xct(electrode((12, 14, 16), seed=1, chunks=8), seed=1, bits=bits)  # the particle model's own path
    assert generated.dtype == dtype and generated.values.dtype == dtype


@pytest.mark.parametrize(("bad", "good", "name"), [
    ({"texture": (0.0, 0.2, 1.0)}, {"texture": (0.0, 0.2, 0.99)}, "texture"),  # in [0, 1)
    ({"psf_sigma": 8.5}, {"psf_sigma": 8.0}, "psf_sigma"),  # at most 8 voxels
    ({"noise_correlation": 8.01}, {"noise_correlation": 8}, "noise_correlation"),
    ({"attenuation": (0.3, 0.5, 0.3)}, {"attenuation": (0.3, 0.5, 0.31)}, "attenuation"),  # pore = active: no contrast
])
def test_physics_is_refused_just_past_its_limits_and_taken_at_them(bad, good, name):
    from bigseg.errors import InputError

    with pytest.raises(InputError, match=f"`{name}`"):
        physics("ideal", **bad)
    p = physics("ideal", **good)
    assert getattr(p, name) == pytest.approx(next(iter(good.values())))
    out = xct(np.array([[[0, 1, 2, 2]]], np.uint8), preset="ideal", **good).values
    assert np.isfinite(out).all()


def test_the_drift_of_a_slice_is_its_own_whatever_the_blur():
    """The illumination drift is a function of the slice's z: a uniform volume imaged with and
    without blur (another halo around every block) drifts the same, slice by slice."""
    flat = np.full((40, 6, 7), 2, np.uint8)
    sharp = xct(da.from_array(flat, chunks=(9, 6, 7)), preset="ideal", drift=0.3, seed=5).values
    blurred = xct(da.from_array(flat, chunks=(9, 6, 7)), preset="ideal", drift=0.3, psf_sigma=1.5, seed=5).values
    assert halo(physics("ideal", drift=0.3, psf_sigma=1.5)) > halo(physics("ideal", drift=0.3))
    means = sharp.mean(axis=(1, 2))
    assert means.max() - means.min() > 0.02  # there is a drift to compare
    np.testing.assert_allclose(blurred[:, 3, 3], means, rtol=1e-5)
