"""electrode: fractions, radii, chunk invariance, determinism, bounded per-block work, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from bigseg.errors import InputError
from bigseg.io import DEFAULT_PHASES
from bigseg.synth import electrode
from bigseg.synth._particles import build_model, render_labels


@pytest.mark.parametrize(
    "fractions",
    [
        {"pore": 0.35, "cbd": 0.15, "active": 0.50},
        (0.45, 0.10, 0.45),
        (0.25, 0.20, 0.55),
    ],
)
def test_fractions_match_request_at_96(fractions):
    lab = electrode(96, fractions=fractions, radius=(7, 2), seed=4, chunks=48)
    got = np.bincount(lab.values.ravel(), minlength=3) / lab.size
    want = np.array(list(fractions.values()) if isinstance(fractions, dict) else fractions)
    assert np.all(np.abs(got - want) <= 0.02), (got, want)


def test_dtype_dims_attrs():
    lab = electrode((40, 50, 60), seed=1, chunks=32, voxel_size=(50, 40, 40), unit="nm")
    assert lab.dims == ("z", "y", "x") and lab.shape == (40, 50, 60)
    assert lab.dtype == np.uint8
    assert lab.attrs["phases"] == DEFAULT_PHASES
    assert lab.attrs["voxel_size"] == (50.0, 40.0, 40.0) and lab.attrs["unit"] == "nm"
    assert lab.data.chunks[0] == (32, 8)
    assert set(np.unique(lab.values)) <= {0, 1, 2}


@pytest.mark.parametrize("chunks", [(17, 23, 30), (64, 64, 64), (5, 96, 11)])
def test_bit_identical_for_any_chunking(chunks):
    ref = electrode((64, 72, 80), seed=7, chunks=(64, 72, 80)).values
    got = electrode((64, 72, 80), seed=7, chunks=chunks).values
    assert np.array_equal(ref, got)


def test_block_render_equals_whole_render():
    model = build_model((48, 48, 48), fractions=(0.35, 0.15, 0.5), radius=(6, 1.5), seed=3)
    whole = render_labels(model, (0, 0, 0), (48, 48, 48))
    part = render_labels(model, (11, 5, 29), (20, 31, 19))
    assert np.array_equal(whole[11:31, 5:36, 29:48], part)


def test_deterministic_and_seed_dependent():
    a = electrode(48, seed=5, chunks=24).values
    b = electrode(48, seed=5, chunks=24).values
    c = electrode(48, seed=6, chunks=24).values
    assert np.array_equal(a, b)
    assert (a != c).mean() > 0.2


def test_radii_follow_requested_distribution_and_threshold_is_small():
    model = build_model((128, 128, 128), fractions=(0.35, 0.15, 0.5), radius=(8, 2), seed=0)
    # the drawn radii (number distribution) match the log-normal mean and std
    assert abs(model.radius.mean() - 8) < 0.8
    assert abs(model.radius.std() - 2) < 0.6
    # the calibrated surface shift is a fraction of a voxel: particles keep their radii
    assert abs(model.t_active) < 1.0


def test_particles_are_separate_objects_with_the_requested_size():
    lab = electrode(96, radius=(8, 1), seed=2, chunks=48, cracked=0).values
    active = lab == 2
    # erode the necks away, then count objects: about one per particle centred in the volume
    core = ndi.binary_erosion(active, iterations=3)
    _, n = ndi.label(core)
    model = build_model((96,) * 3, fractions=(0.35, 0.15, 0.5), radius=(8, 1), seed=2, cracked=0)
    inside = np.all((model.centre >= 0) & (model.centre < 96), axis=1).sum()
    assert 0.6 * inside < n <= 1.3 * inside


def test_cbd_sits_on_particle_surfaces_not_in_open_pore():
    lab = electrode(96, seed=9, chunks=48).values
    dist = ndi.distance_transform_edt(lab != 2)
    d_cbd = dist[lab == 1]
    d_pore = dist[lab == 0]
    assert np.median(d_cbd) < np.median(d_pore)
    assert np.mean(d_cbd <= 4) > 0.8


def test_cbd_is_patchy_not_a_uniform_coating():
    lab = electrode(96, seed=9, chunks=48).values
    shell = (ndi.binary_dilation(lab == 2) & (lab != 2))
    covered = (lab[shell] == 1).mean()
    assert 0.1 < covered < 0.9  # part of the particle surface is bare (in contact with pore)


def test_render_cost_scales_with_particles_near_block():
    model = build_model((160, 160, 160), fractions=(0.35, 0.15, 0.5), radius=(6, 1.5), seed=1)
    near = model.candidates((0, 0, 0), (32, 32, 32))
    assert 0 < len(near) < model.n_particles / 8


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"fractions": (0.5, 0.2, 0.4)}, "fractions"),
        ({"fractions": {"pore": 0.5, "active": 0.5}}, "fractions"),
        ({"radius": -3}, "radius"),
        ({"radius": (8, -1)}, "radius"),
        ({"seed": -1}, "seed"),
        ({"chunks": 0}, "chunks"),
        ({"cracked": 2}, "cracked"),
    ],
)
def test_bad_input_names_the_argument(kwargs, name):
    with pytest.raises(InputError, match=f"`{name}`"):
        electrode(32, **kwargs)


def test_bad_shape_names_the_argument():
    with pytest.raises(InputError, match="`shape`"):
        electrode((32, 0, 32))


@pytest.mark.parametrize("steps", [None, 2], ids=["electrode", "series"])
def test_outputs_write_to_netcdf_with_their_provenance(tmp_path, steps):
    # the provenance attrs were dicts (and lists of dicts), which netCDF refuses: JSON text now
    import json

    import xarray as xr

    from bigseg.synth import perturb, series, xct

    lab = (electrode((10, 12, 11), radius=(3, 1), seed=1, chunks=(4, 5, 6), voxel_size=(2.0, 1.0, 0.5), unit="um")
           if steps is None else series((10, 12, 11), steps=steps, radius=(3, 1), seed=1, chunks=(4, 5, 6)))
    for vol in (lab, xct(lab), perturb(lab)):
        vol.to_netcdf(tmp_path / "v.nc", engine="h5netcdf")
        back = xr.load_dataarray(tmp_path / "v.nc", engine="h5netcdf")
        np.testing.assert_array_equal(back.values, vol.values)
        assert {k: v for k, v in back.attrs.items() if isinstance(v, str)} == \
            {k: v for k, v in vol.attrs.items() if isinstance(v, str)}
    if steps is None:
        assert json.loads(lab.attrs["synth"])["n_particles"] > 0
    else:
        assert [s["scale"] for s in json.loads(lab.attrs["states"])] == [1.0, 1.05]
    assert json.loads(xct(lab).attrs["xct"])["preset"] == "nano-ct-phase"
