"""xct: chunk invariance, determinism, and the physics knobs doing what they claim."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest

from bigseg.errors import InputError
from bigseg.kernels.xct import halo, xct_block
from bigseg.synth import PRESETS, electrode, physics, xct
from bigseg.synth._xct import _tables


@pytest.fixture(scope="module")
def labels():
    return electrode((48, 56, 64), seed=3, chunks=64).values


@pytest.mark.parametrize("preset", ["nano-ct-phase", "lab-micro-ct"])
@pytest.mark.parametrize("chunks", [(17, 23, 30), (48, 56, 64), (24, 19, 64)])
def test_chunk_invariant(labels, preset, chunks):
    ref = xct(da.from_array(labels, chunks=(48, 56, 64)), seed=2, preset=preset).values
    got = xct(da.from_array(labels, chunks=chunks), seed=2, preset=preset).values
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)


def test_equals_whole_array_reference(labels):
    """The tomogram equals the kernel applied once to the whole, reflect-padded array."""
    p = physics("nano-ct-phase")
    h = halo(p)
    drift, rings, step, centre = _tables(p, labels.shape, h, 5)
    whole = xct_block(np.pad(labels, h, mode="symmetric"), np.array([-h] * 3), (h, h, h), p, seed=5,
                      drift=drift, drift_start=-h, rings=rings, ring_step=step, centre=centre)
    got = xct(da.from_array(labels, chunks=(17, 23, 30)), seed=5).values
    np.testing.assert_allclose(got, whole, rtol=0, atol=1e-6)


def test_deterministic_and_seeded(labels):
    a = xct(labels, seed=1).values
    b = xct(labels, seed=1).values
    c = xct(labels, seed=2).values
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def _flat_std(snr, noise="gaussian"):
    flat = np.full((40, 40, 40), 2, np.uint8)
    img = xct(flat, seed=0, preset="ideal", snr=snr, noise=noise, noise_correlation=0.7).values
    return img[8:-8, 8:-8, 8:-8].std()


def test_higher_snr_gives_lower_noise():
    s2, s8 = _flat_std(2.0), _flat_std(8.0)
    assert s8 < s2 / 3
    # the noise level is the contrast over the SNR
    contrast = PRESETS["ideal"]["attenuation"][2] - PRESETS["ideal"]["attenuation"][0]
    assert s2 == pytest.approx(contrast / 2.0, rel=0.1)


def test_poisson_noise_grows_with_intensity():
    dark = np.zeros((32, 32, 32), np.uint8)
    bright = np.full((32, 32, 32), 2, np.uint8)
    sd = xct(dark, preset="ideal", snr=4, noise="poisson").values.std()
    sb = xct(bright, preset="ideal", snr=4, noise="poisson").values.std()
    assert sb > 2 * sd


def _edge_width(psf):
    lab = np.zeros((16, 16, 64), np.uint8)
    lab[:, :, 32:] = 2
    img = xct(lab, preset="ideal", psf_sigma=psf).values
    prof = img[8, 8]
    prof = (prof - prof.min()) / (prof.max() - prof.min())
    return np.sum((prof > 0.1) & (prof < 0.9))


def test_more_blur_widens_the_interface_profile():
    assert _edge_width(0.0) == 0
    w1, w3 = _edge_width(1.0), _edge_width(3.0)
    assert 1 <= w1 < w3
    assert w3 >= 2.5 * w1


def test_phase_contrast_makes_fringes():
    lab = np.zeros((16, 16, 64), np.uint8)
    lab[:, :, 32:] = 2
    img = xct(lab, preset="ideal", phase_contrast=1.5, phase_sigma=1.0).values[8, 8]
    assert img.max() > 1.0 + 0.05  # overshoot on the bright side
    assert img.min() < PRESETS["ideal"]["attenuation"][0] - 0.05  # undershoot on the dark side


def test_cbd_grey_value_close_to_pore():
    lab = np.zeros((8, 8, 24), np.uint8)
    lab[..., 8:16] = 1
    lab[..., 16:] = 2
    p = physics("nano-ct-phase")
    img = xct(lab, preset="ideal", attenuation=p.attenuation).values[4, 4]
    pore, cbd, act = img[2], img[12], img[20]
    assert pore < cbd < act and (cbd - pore) < 0.3 * (act - pore)


def test_rings_are_centred_on_the_rotation_axis():
    flat = np.zeros((4, 65, 65), np.uint8)
    img = xct(flat, preset="ideal", rings=0.2).values
    yy, xx = np.mgrid[0:65, 0:65]
    r = np.hypot(yy - 32, xx - 32)
    ring = img[0]
    # constant on circles about the centre: tiny spread within thin annuli, large between them
    within = [ring[(r >= k) & (r < k + 0.3)].std() for k in range(5, 30, 3)]
    assert np.max(within) < 0.5 * ring.std()
    assert np.array_equal(img[0], img[3])  # the same in every slice


def test_drift_along_z():
    flat = np.full((64, 8, 8), 2, np.uint8)
    img = xct(flat, preset="ideal", drift=0.2).values
    means = img.mean(axis=(1, 2))
    assert means.max() - means.min() > 0.05
    assert np.allclose(img[5], img[5, 0, 0])  # uniform in each slice


def test_cupping_darkens_the_cylinder_centre():
    flat = np.full((4, 41, 51), 2, np.uint8)
    img = xct(da.from_array(flat, chunks=(4, 13, 17)), preset="ideal", cupping=0.25).values
    act = PRESETS["ideal"]["attenuation"][2]
    assert img[1, 20, 25] == pytest.approx(0.75 * act, rel=1e-5)  # the axis: (1 - cupping)
    assert img[1, 20, 25 + 10] == pytest.approx(act * (1 - 0.25 * (1 - (10 / 20.5) ** 2)), rel=1e-5)
    assert img[1, 0, 0] == pytest.approx(act, rel=1e-6) and img[1, 20, 50] == pytest.approx(act, rel=1e-6)
    np.testing.assert_allclose(img, xct(flat, preset="ideal", cupping=0.25).values, atol=1e-6)  # any chunking
    assert np.array_equal(xct(flat, preset="ideal").values, xct(flat, preset="ideal", cupping=0).values)


@pytest.mark.parametrize("bits, dtype", [(8, np.uint8), (16, np.uint16)])
def test_quantisation(labels, bits, dtype):
    img = xct(labels, bits=bits).values
    assert img.dtype == dtype
    assert img.max() <= 2**bits - 1 and len(np.unique(img)) > 50


def test_series_input_gets_independent_noise_per_step(labels):
    series = np.stack([labels, labels])
    img = xct(series, seed=1).values
    assert img.shape == (2, *labels.shape)
    assert not np.allclose(img[0], img[1])
    assert abs(img[0].mean() - img[1].mean()) < 0.02


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"preset": "nope"}, "preset"),
        ({"snr": -1}, "snr"),
        ({"psf_sigma": -0.5}, "psf_sigma"),
        ({"bits": 12}, "bits"),
        ({"noise": "pink"}, "noise"),
        ({"attenuation": (1, 2)}, "attenuation"),
        ({"cupping": 1.0}, "cupping"),
        ({"cupping": -0.1}, "cupping"),
        ({"wobble": 1}, "physics parameters"),
    ],
)
def test_bad_physics_names_the_argument(labels, kwargs, name):
    with pytest.raises(InputError, match=name):
        xct(labels, **kwargs)


def test_float_labels_refused():
    with pytest.raises(InputError, match="`labels`"):
        xct(np.zeros((8, 8, 8), np.float32))


@pytest.mark.parametrize("value", [3, 255, 258, 513, -1, -254])
def test_other_label_values_are_imaged_as_pore(value):
    """As documented, also values a uint8 cast would wrap into 0-2 (258 was imaged as active)."""
    lab = np.zeros((10, 10, 10), np.int16)
    lab[:, :, 3:6] = 2
    lab[:, :, 6:] = value
    want = xct(np.where(lab == 2, 2, 0).astype(np.uint8), preset="ideal").values
    for given in (lab, da.from_array(lab, chunks=4)):
        np.testing.assert_array_equal(xct(given, preset="ideal").values, want)


def test_no_noise_with_infinite_snr(labels):
    a = xct(labels, snr=math.inf, seed=1).values
    b = xct(labels, snr=math.inf, seed=1).values
    assert np.array_equal(a, b)


@pytest.mark.parametrize("chunks", [(17, 23, 30), (8, 48, 9)])
def test_generated_labels_take_the_independent_block_path_with_the_same_result(chunks):
    """xct of an electrode renders each block's halo from the particle model (no halo exchange,
    bounded memory); the result equals the generic halo-exchange path bit for bit."""
    from bigseg.synth._electrode import generator_of

    lab = electrode((40, 48, 56), seed=3, chunks=chunks)
    assert generator_of(lab.data) is not None
    img = xct(lab, seed=2)
    exchange = ("concatenate", "getitem", "overlap")
    layers = img.data.__dask_graph__().layers
    assert not any(str(k).startswith(exchange) for k in layers)  # no halo exchange between blocks
    generic = xct(da.from_array(lab.values, chunks=chunks), seed=2)
    assert any(str(k).startswith(exchange) for k in generic.data.__dask_graph__().layers)
    assert np.array_equal(img.values, generic.values)


@pytest.mark.parametrize("shape, chunks", [((3, 24, 26), (1, 24, 26)), ((20, 5, 22), (20, 2, 9))])
def test_generated_labels_thinner_than_the_halo_are_imaged_whatever_the_chunking(shape, chunks):
    """Along an axis thinner than the halo (3 slices, halo 8) each block of a generated
    electrode mirrored its halo at its own cut: the tomogram depended on the chunking (up to
    0.03 of the contrast) and differed from the generic path's, which images that axis whole."""
    lab = electrode(shape, radius=(4, 1), seed=2, chunks=chunks)
    whole = xct(electrode(shape, radius=(4, 1), seed=2, chunks=shape), seed=4).values
    np.testing.assert_array_equal(xct(lab, seed=4).values, whole)
    np.testing.assert_array_equal(xct(da.from_array(lab.values, chunks=chunks), seed=4).values, whole)


def test_generated_series_path_equals_generic():
    from bigseg.synth import series

    s = series(32, steps=2, seed=1, chunks=16)
    a = xct(s, seed=1).values
    b = xct(da.from_array(s.values, chunks=(1, 32, 32, 32)), seed=1).values
    assert np.array_equal(a, b)


def test_generated_tomogram_graph_holds_a_bounded_number_of_blocks():
    """Writing the tomogram of an electrode never needs more than the model and one block per
    thread in memory: dask's static schedule (dask.order) holds <= 2 results at any time,
    whatever the number of blocks (here 64 and 512)."""
    import zarr
    from dask.order import diagnostics

    for n, c in ((128, 32), (256, 32)):
        img = xct(electrode(n, seed=0, chunks=c))
        target = zarr.create_array(store={}, shape=img.shape, chunks=(c,) * 3, dtype="f4")
        stored = da.store(img.data, target, lock=False, compute=False)
        info, _ = diagnostics(dict(stored.__dask_graph__()))
        assert max(v.num_data_when_run for v in info.values()) <= 2


def test_labels_are_imaged_by_their_phase_names():
    """xct read label values as 0 pore, 1 cbd, 2 active whatever the labels' attrs["phases"]
    said: a two-phase ["pore", "active"] segmentation got the CBD attenuation (0.3 for 1.0) on
    its active material, phases stored in another order were swapped. Labels are imaged by name
    now, as the measurements match phases; names of other phases leave the values as they are."""
    from bigseg.io import make_volume

    ref = electrode((16, 20, 24), seed=1, chunks=8)  # 0 pore, 1 cbd, 2 active
    lab = ref.values
    two = make_volume((lab == 2).astype(np.uint8), phases=["pore", "active"])
    want = xct(make_volume(np.where(lab == 2, 2, 0).astype(np.uint8), phases=["pore", "cbd", "active"]), seed=4)
    np.testing.assert_array_equal(xct(two, seed=4).values, want.values)
    order = ["active", "pore", "cbd"]  # value i is phase order[i]
    swapped = make_volume(np.choose(lab, [1, 2, 0]).astype(np.uint8), phases=order)
    np.testing.assert_array_equal(xct(swapped, seed=4, preset="lab-micro-ct").values,
                                  xct(ref, seed=4, preset="lab-micro-ct").values)
    renamed = make_volume(lab, phases=["void", "binder", "nmc"])  # other names: imaged by value, as before
    np.testing.assert_array_equal(xct(renamed, seed=4).values, xct(ref, seed=4).values)
