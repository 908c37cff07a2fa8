"""Simulator QA: CBD attached to particles, impossible requests refused up front, provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from bigseg.errors import InputError, MemoryBudgetError
from bigseg.synth import electrode, perturb, series, xct


def test_cbd_stays_on_the_particles_when_much_is_asked():
    # 25 % CBD on 5 % active: CBD was placed as blobs in open pore (37 % of it more than 8
    # voxels from any particle, up to 25); now thicker films on the particles
    lab = electrode(48, fractions=(0.7, 0.25, 0.05), radius=(5, 1), seed=2, chunks=48).values
    dist = ndi.distance_transform_edt(lab != 2)
    inner = np.zeros(lab.shape, bool)
    inner[8:-8, 8:-8, 8:-8] = True  # away from particles whose centres lie outside the volume
    cbd = (lab == 1) & inner
    assert ((dist > 8) & cbd).sum() / cbd.sum() < 0.05
    got = np.bincount(lab.ravel(), minlength=3) / lab.size
    np.testing.assert_allclose(got, (0.7, 0.25, 0.05), atol=0.01)


@pytest.mark.parametrize("make", [
    lambda seed: electrode(8, radius=2, seed=seed),
    lambda seed: series(8, steps=2, radius=2, seed=seed),
    lambda seed: xct(np.zeros((4, 4, 4), np.uint8), seed=seed),
    lambda seed: perturb(np.zeros((4, 4, 4), np.uint8), seed=seed),
], ids=["electrode", "series", "xct", "perturb"])
def test_a_seed_the_kernels_cannot_key_is_refused_by_name(make):
    # xct(seed=2**59) overflowed int64 keys (RuntimeWarning), 2**64 raised OverflowError
    with pytest.raises(InputError, match=r"`seed` in \[0, 2\*\*48\)"):
        make(2**59)
    assert make(2**48 - 1).values.size > 0  # the largest seed works (no overflow warning)


@pytest.mark.parametrize("kwargs, name", [
    ({"drift": 1.5}, "drift"),  # a factor 1 - drift < 0: slices darkened to nothing, contrast inverted
    ({"phase_sigma": 50.0}, "phase_sigma"),  # a halo of 200 voxels per block
    ({"cupping": "0.2"}, "cupping"),  # failed with a numpy UFuncTypeError when computed
    ({"texture_scale": 1e-300}, "texture_scale"),  # the lattice index overflowed: a scan of NaN
])
def test_physics_that_cannot_be_imaged_is_refused_up_front(kwargs, name):
    with pytest.raises(InputError, match=f"`{name}`"):
        xct(np.zeros((4, 4, 4), np.uint8), **kwargs)


def test_drift_just_below_one_keeps_every_slice_positive():
    img = xct(np.full((64, 4, 4), 2, np.uint8), preset="ideal", drift=0.9).values
    assert img.min() > 0


def test_a_volume_whose_particle_list_cannot_fit_is_refused_before_any_work():
    with pytest.raises(MemoryBudgetError, match="`shape`"):
        electrode(10**6)


def test_provenance_names_every_generation_parameter():
    lab = electrode(16, radius=3, seed=2, cracked=0.5, irregularity=0.3)
    meta = json.loads(lab.attrs["synth"])
    assert meta["cracked"] == 0.5 and meta["irregularity"] == 0.3 and meta["seed"] == 2
    ser = series(16, steps=2, radius=3, seed=2, swelling=0.1)
    meta = json.loads(ser.attrs["synth"])
    assert meta["swelling"] == 0.1 and meta["n_particles"] > 0 and meta["radius"] == [3.0, 0.75]


def test_cli_series_reports_its_particles(tmp_path, bigseg_cli):
    out = bigseg_cli("synth", tmp_path / "s.ome.zarr", "--shape", "16", "--steps", "2", "--radius", "3", "--no-progress")
    n = json.loads(series(16, steps=2, radius=3).attrs["synth"])["n_particles"]
    assert f", {n} particles" in out.stdout


def test_particles_wider_than_the_volume_are_warned_of_but_not_in_training():
    """``electrode(32, radius=100)`` gave the inside of one particle without a word; the training
    generator's slabs, which hold such pieces on purpose, stay quiet."""
    with pytest.warns(UserWarning, match=r"makes particles 200 voxels across, wider than `shape` \(32, 32, 32\)"):
        electrode(32, radius=100)
    with pytest.warns(UserWarning, match="makes particles 40 voxels across"):
        series(16, steps=2, radius=(20, 2))
    from bigseg.train import make_pair

    img, lab = make_pair((4, 24, 24), electrode={"radius": (20.0, 4.0), "seed": 1}, preset="lab-micro-ct", physics={},
                         seed=1)  # (filterwarnings=error: a warning fails here)
    assert img.shape == lab.shape == (4, 24, 24)
