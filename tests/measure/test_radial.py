"""Radial profile: volume fractions by distance from a cylinder's axis, against NumPy."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import bigseg
from bigseg.errors import InputError
from bigseg.measure import radial_profile

from ._measure_ref import make_labels


def _reference(lab, centre, step, sampling=(1.0, 1.0), k=3):
    ny, nx = lab.shape[-2:]
    yy, xx = np.meshgrid((np.arange(ny) - centre[0]) * sampling[0], (np.arange(nx) - centre[1]) * sampling[1],
                         indexing="ij")
    dist = np.hypot(yy, xx)
    rbin = np.broadcast_to((dist / step).astype(int), lab.shape)
    n = rbin.max() + 1
    counts = np.zeros((k, n))
    for p in range(k):
        counts[p] = np.bincount(rbin[lab == p], minlength=n)
    # mid radius of each shell; the last one ends at the farthest voxel
    mids = (np.arange(n) * step + np.minimum((np.arange(n) + 1) * step, dist.max())) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / counts.sum(axis=0), counts.sum(axis=0), mids


@pytest.mark.parametrize("chunks", [(13, 17, 23), (40, 48, 56)], ids=str)
def test_matches_numpy(chunks):
    lab = make_labels()
    lab[:, :5, :7] = 255  # unlabelled voxels are left out
    out = radial_profile(da.from_array(lab, chunks=chunks), centre=(20.0, 31.5), step=2.5)
    frac, n, mids = _reference(lab, (20.0, 31.5), 2.5)
    np.testing.assert_array_equal(out.bin_voxels.values, n)
    np.testing.assert_allclose(out.values, frac, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(out.r.values, mids)
    assert out.r.values[-1] < np.hypot(47 - 20.0, 31.5)  # not beyond the farthest corner, (47, 0)
    default = radial_profile(lab)
    assert default.attrs["centre"] == [23.5, 27.5]


def test_anisotropic_voxels_and_series():
    lab = make_labels((12, 30, 40), seed=2)
    vol = bigseg.io.make_volume(np.stack([lab, lab[:, ::-1]]), voxel_size=(3.0, 1.0, 2.0), unit="nm",
                                phases=["pore", "cbd", "active"])
    out = radial_profile(vol, step=1.5)
    frac, n, mids = _reference(lab, (14.5, 19.5), 1.5, sampling=(1.0, 2.0))
    assert out.dims == ("t", "phase", "r") and out.r.attrs["units"] == "nm"
    np.testing.assert_allclose(out.values[0], frac, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(out.r.values, mids)  # edges of the smaller side, 1 nm


def test_a_rod_reads_as_a_step():
    zz, yy, xx = np.ogrid[:8, :41, :41]
    lab = np.where((yy - 20) ** 2 + (xx - 20) ** 2 <= 10 ** 2, 2, 0).astype(np.uint8)
    out = radial_profile(lab, step=1)
    active = out.sel(phase="active").values
    assert (active[:10] == 1).all() and (active[11:] == 0).all()


@pytest.mark.parametrize("kw, match", [({"step": 0}, "`step`"), ({"centre": 3}, "`centre`"),
                                       ({"centre": (1, float("nan"))}, "`centre`")])
def test_bad_arguments_are_named(kw, match):
    with pytest.raises(InputError, match=match):
        radial_profile(np.zeros((2, 5, 5), np.uint8), **kw)


def test_cupping_shows_in_a_threshold_segmentation():
    """Beam-hardening cupping darkens the centre: multi-Otsu finds more pore there than at the
    rim; without cupping its pore bias is flat."""
    lab = bigseg.synth.electrode((24, 128, 128), seed=5)
    truth = radial_profile(lab, step=16).sel(phase="pore").values[:4]  # the shells inside the cylinder

    def centre_minus_rim(cupping):
        seg = bigseg.baselines.threshold(bigseg.synth.xct(lab, seed=5, preset="lab-micro-ct", cupping=cupping))
        bias = radial_profile(seg, step=16).sel(phase="pore").values[:4] - truth
        return bias[0] - bias[3]

    assert abs(centre_minus_rim(0.0)) < 0.03 and centre_minus_rim(0.25) > 0.06
