"""series: shapes, shared particles, the monotone trends of the evolving quantities."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bigseg.errors import InputError
from bigseg.synth import electrode, series, xct


@pytest.fixture(scope="module")
def ser():
    return series(64, steps=4, seed=3, chunks=(17, 23, 30))


def _pore_contact(l):
    """Fraction of active-surface faces in contact with pore (the 'detachment')."""
    pore = tot = 0
    for ax in range(3):
        x = np.moveaxis(l, ax, 0)
        a, b = x[:-1], x[1:]
        m = (a == 2) ^ (b == 2)
        other = np.where(a == 2, b, a)
        tot += m.sum()
        pore += (m & (other == 0)).sum()
    return pore / tot


def test_shape_dims_chunks(ser):
    assert ser.dims == ("t", "z", "y", "x") and ser.shape == (4, 64, 64, 64)
    assert ser.dtype == np.uint8 and ser.attrs["phases"] == ["pore", "cbd", "active"]
    assert set(ser.data.chunks[0]) == {1} and ser.data.chunks[1][0] == 17
    assert len(json.loads(ser.attrs["states"])) == 4


def test_monotone_trends(ser):
    a = ser.values
    active = [(a[t] == 2).mean() for t in range(4)]
    cbd = [(a[t] == 1).mean() for t in range(4)]
    contact = [_pore_contact(a[t]) for t in range(4)]
    assert np.all(np.diff(active) > 0), active  # particles swell
    assert np.all(np.diff(contact) > 0), contact  # CBD detaches: a gap opens
    assert np.all(np.diff(cbd) < 0), cbd


def test_same_particles_at_every_step(ser):
    a = ser.values
    # the particles move nowhere: most active voxels of step 0 remain active
    kept = ((a[0] == 2) & (a[-1] == 2)).sum() / (a[0] == 2).sum()
    assert kept > 0.95


@pytest.mark.parametrize("seed, swelling", [(0, 0.05), (1, 0.0)])
def test_fractions_hold_at_t0_as_in_electrode(seed, swelling):
    """The thresholds are calibrated in the first step's state (narrower cracks than the default
    state: calibrated there, t = 0 had 1 percentage point less pore and more active)."""
    t0 = series(96, steps=2, seed=seed, swelling=swelling, chunks=96)[0].values
    e = electrode(96, seed=seed, chunks=96).values
    want = np.array([0.35, 0.15, 0.50])
    got = np.bincount(t0.ravel(), minlength=3) / t0.size
    ref = np.bincount(e.ravel(), minlength=3) / e.size
    assert np.abs(got - want).max() < 0.003, got
    assert np.abs(got - ref).max() < 0.003, (got, ref)


def test_series_chunk_invariant(ser):
    other = series(64, steps=4, seed=3, chunks=64).values
    assert np.array_equal(ser.values, other)


def test_no_evolution_when_knobs_are_off():
    s = series(40, steps=3, seed=1, swelling=0, crack_growth=0, gap=0, chunks=40).values
    assert np.array_equal(s[0], s[2])


def test_tomograms_of_a_series(ser):
    img = xct(ser.isel(t=slice(0, 2)), seed=0)
    assert img.dims == ("t", "z", "y", "x") and img.shape == (2, 64, 64, 64)
    v = img.values
    assert v.dtype == np.float32 and not np.allclose(v[0], v[1])


@pytest.mark.parametrize("stacked", [False, True])
def test_texture_belongs_to_the_sample_noise_to_the_scan(stacked):
    """Was: every step of a series redrew the texture (CBD nanoporosity, grain contrast): an
    unchanged sample imaged twice without noise differed in the CBD by 7 % of its grey on average
    (24 % at the 99th percentile; 48³, nano-ct-phase)."""
    s = series(24, steps=2, seed=1, swelling=0, crack_growth=0, gap=0, chunks=12)
    if stacked:  # labels of no generator: imaged array by array
        s = s.copy(data=np.stack([s.values[0]] * 2))
    quiet = xct(s, seed=5, snr=float("inf"), rings=0, drift=0).values
    np.testing.assert_array_equal(quiet[0], quiet[1])
    assert quiet[0].std() > 0
    noisy = xct(s, seed=5).values
    assert not np.allclose(noisy[0], noisy[1])  # each scan its own noise


@pytest.mark.parametrize("kwargs, name", [({"steps": 0}, "steps"), ({"swelling": 0.9}, "swelling"),
                                          ({"detached": -0.1}, "detached"), ({"gap": -1}, "gap")])
def test_bad_input_names_the_argument(kwargs, name):
    kw = {"steps": 3, **kwargs}
    with pytest.raises(InputError, match=f"`{name}`"):
        series(32, **kw)


def test_absurd_steps_are_refused_at_the_call():
    """steps=10**12 was accepted, then listed a state per step (for ever) before any volume."""
    from bigseg.synth._series import MAX_STEPS

    for bad in (MAX_STEPS + 1, 10**12):
        with pytest.raises(InputError, match=f"^Expected `steps` to be at most {MAX_STEPS:,}. Got {bad} instead.$"):
            series(32, steps=bad)
    with pytest.raises(InputError, match="^Expected `steps` to be a positive integer. Got 3.0 instead.$"):
        series(32, steps=3.0)


def test_cracks_grow_when_alone():
    s = series(48, steps=3, seed=2, swelling=0, gap=0, crack_growth=1.5, chunks=48).values
    active = [(s[t] == 2).sum() for t in range(3)]
    assert active[0] > active[1] > active[2]  # opening cracks turn particle voxels into pore
    assert np.all((s[2] == 2) <= (s[0] == 2))  # nothing else moves


def test_series_demo_scans_share_the_sample_texture(tmp_path, monkeypatch):
    """The operando demo imaged each step alone with a seed of its own (``seed + 1000 t``): its
    scans redrew the texture (CBD nanoporosity, grain contrast) where the sample did not change.
    Imaged without noise, rings, drift or blur, two scans agree wherever the sample is unchanged."""
    import functools

    import scipy.ndimage

    from bigseg import demo, synth as bsynth
    from bigseg.kernels.xct import halo
    from bigseg.pipeline import Pipeline
    from bigseg.synth._xct import physics

    quiet = {"snr": float("inf"), "rings": 0, "drift": 0, "psf_sigma": 0, "phase_contrast": 0}  # voxel by voxel
    monkeypatch.setattr(bsynth, "xct", functools.partial(bsynth.xct, **quiet))
    monkeypatch.setattr(scipy.ndimage, "shift", lambda a, *args, **kwargs: np.asarray(a))  # the scans undrifted
    images = []
    monkeypatch.setattr(demo, "_write_tiff_stack", lambda image, folder, voxel_size: images.append(np.asarray(image)))

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(Pipeline, "run", stop)
    with pytest.raises(Stop):
        demo.run_series_demo(tmp_path / "demo", size=16, steps=2, chunks=16, seed=7, progress=False)
    truth = series((16, 16, 16), steps=2, seed=7, chunks=16).values
    assert halo(physics("nano-ct-phase", **quiet)) == 0
    same = truth[0] == truth[1]
    assert len(images) == 2 and (same & (truth[0] == 1)).sum() > 20  # CBD voxels unchanged between the scans
    np.testing.assert_array_equal(images[0][same], images[1][same])
