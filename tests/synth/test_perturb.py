"""perturb: the LRCS-Net ground-truth perturbation band, chunk invariance, bad input."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from bigseg.errors import InputError
from bigseg.io import DEFAULT_PHASES
from bigseg.kernels.synth import perturb_block
from bigseg.synth import electrode, perturb


@pytest.fixture(scope="module")
def labels():
    return electrode(64, seed=11, chunks=64)


def _interface(a):
    return _interface_faces(a) > 0


@pytest.mark.parametrize("iterations", [1, 3, 5])
def test_changes_stay_within_iterations_of_the_original_interface(labels, iterations):
    a = labels.values
    p = perturb(labels, ratio=0.3, iterations=iterations, seed=1).values
    changed = p != a
    assert changed.any()
    dist = ndi.distance_transform_edt(~_interface(a))
    assert dist[changed].max() <= iterations
    # and with 6-connected steps the bound is iterations - 1
    cdt = ndi.distance_transform_cdt(~_interface(a), metric="taxicab")
    assert cdt[changed].max() <= iterations - 1


def test_ratio_and_iterations_control_the_amount(labels):
    a = labels.values
    f = [(perturb(labels, ratio=r, iterations=n).values != a).mean() for r, n in [(0.05, 1), (0.1, 1), (0.1, 5)]]
    assert 0 < f[0] < f[1] < f[2]
    assert (perturb(labels, iterations=0).values == a).all()


def test_fractions_stay_close(labels):
    """Either side of a face is as likely to move: no phase grows for being thin (a picked voxel
    always taking its chosen neighbour's phase grew the CBD by 2.4 percentage points over 5
    iterations)."""
    a = labels.values
    p = perturb(labels).values
    fa = np.bincount(a.ravel(), minlength=3) / a.size
    fp = np.bincount(p.ravel(), minlength=3) / a.size
    assert np.abs(fa - fp).max() < 0.004
    assert set(np.unique(p)) <= {0, 1, 2}


def _interface_faces(a):
    """Per voxel, the number of its 6-neighbours of another phase (its faces on the interface)."""
    k = np.zeros(a.shape, int)
    for ax in range(a.ndim):
        d = np.diff(a, axis=ax) != 0
        lo = [slice(None)] * a.ndim
        hi = [slice(None)] * a.ndim
        lo[ax] = slice(0, -1)
        hi[ax] = slice(1, None)
        k[tuple(lo)] += d
        k[tuple(hi)] += d
    return k


@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.3])
def test_ratio_is_the_share_of_interface_voxels_moved(labels, ratio):
    """As the paper (and DESIGN.md): pick ``ratio`` of the interface voxels per iteration. Picks
    per interface face moved 19 % of an electrode's interface voxels at 0.1 (a voxel on a curved
    surface has ~2 faces there)."""
    a = labels.values
    k = _interface_faces(a)
    moved = perturb(labels, ratio=ratio, iterations=1, seed=2).values != a
    assert not moved[k == 0].any()
    assert moved[k > 0].mean() == pytest.approx(ratio, rel=0.15)
    assert (k[k > 0] >= 2).mean() > 0.5  # the interface is curved: most of its voxels have several faces


def test_ratio_one_differs_from_a_half(labels):
    assert not np.array_equal(perturb(labels, ratio=1.0, iterations=2).values,
                              perturb(labels, ratio=0.5, iterations=2).values)


def test_a_flat_interface_moves_both_ways_at_the_ratio():
    a = np.zeros((40, 40, 40), np.uint8)
    a[:, :, 20:] = 2
    p = perturb(a, ratio=0.1, iterations=1, seed=4).values
    moved = p != a  # only the two layers beside the interface can move
    assert not moved[:, :, :19].any() and not moved[:, :, 21:].any()
    gained, lost = moved[:, :, 19].mean(), moved[:, :, 20].mean()  # active into pore, pore into active
    assert gained == pytest.approx(0.1, abs=0.02) and lost == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize("chunks", [(17, 23, 30), (32, 64, 9), (64, 64, 64)])
def test_chunk_invariant(labels, chunks):
    ref = perturb(labels.chunk(64), seed=3).values
    got = perturb(labels.chunk(dict(zip(labels.dims, chunks))), seed=3).values
    assert np.array_equal(ref, got)


def test_equals_whole_array_kernel(labels):
    a = labels.values
    n = 5
    whole = perturb_block(np.pad(a, n, constant_values=255), np.array([-n] * 3), 0.1, n, 0)[n:-n, n:-n, n:-n]
    assert np.array_equal(perturb(da.from_array(a, chunks=(17, 23, 30))).values, whole)


@pytest.mark.parametrize("shape, chunks", [((4, 30, 30), (2, 7, 11)), ((1, 30, 30), (1, 9, 30)),
                                           ((3, 40, 2), (3, 6, 1)), ((1, 1, 1), (1, 1, 1))])
def test_thin_volumes_equal_whole_array_kernel(shape, chunks):
    """An axis shorter than the halo (dask refused it: 'overlapping depth 5 is larger than your
    array 4') is one block with the unlabelled border, as the whole-array kernel."""
    a = electrode(shape, seed=2, chunks=64).values
    n = 5
    whole = perturb_block(np.pad(a, n, constant_values=255), np.array([-n] * 3), 0.3, n, 1)[n:-n, n:-n, n:-n]
    got = perturb(da.from_array(a, chunks=chunks), ratio=0.3, seed=1).values
    assert np.array_equal(got, whole)
    assert (got != a).any() or a.size == 1


@pytest.mark.parametrize("value", [256, 258, -1, 1000])
def test_label_values_a_uint8_would_wrap_are_refused(value):
    """258 became 2 (active) and -1 became 255 (unlabelled)."""
    a = np.zeros((10, 10, 10), np.int16)
    a[:, :, 5:] = value
    with pytest.raises(InputError, match=f"`labels` values .*Got {value} instead"):
        perturb(a)  # in memory: before any work
    lazy = perturb(da.from_array(a, chunks=5))  # lazy: when the block is computed
    with pytest.raises(InputError, match=f"`labels` values .*Got {value} instead"):
        lazy.values


def test_wider_integer_labels_keep_255_unlabelled():
    a = np.zeros((10, 10, 10), np.int32)
    a[:, :, 5:] = 2
    a[:, :, 4:6][::2] = 255
    p = perturb(a, ratio=1.0, iterations=3).values
    assert np.array_equal(p, perturb(a.astype(np.uint8), ratio=1.0, iterations=3).values)
    assert np.array_equal(p == 255, a == 255)


def test_unlabelled_voxels_never_move_nor_spread():
    a = np.zeros((20, 20, 20), np.uint8)
    a[:, :, 10:] = 2
    a[:, :, 9:11][::2] = 255
    p = perturb(a, ratio=1.0, iterations=3).values
    assert np.array_equal(p == 255, a == 255)


def test_keeps_attrs_and_seeds_differ(labels):
    p = perturb(labels, seed=1)
    assert p.attrs["phases"] == DEFAULT_PHASES and p.dims == labels.dims
    assert not np.array_equal(p.values, perturb(labels, seed=2).values)


@pytest.mark.parametrize("kwargs, name", [({"ratio": 0}, "ratio"), ({"ratio": 1.5}, "ratio"),
                                          ({"iterations": -1}, "iterations"), ({"seed": 1.5}, "seed")])
def test_bad_input_names_the_argument(labels, kwargs, name):
    with pytest.raises(InputError, match=f"`{name}`"):
        perturb(labels, **kwargs)


def test_perturbed_and_simulated_volumes_keep_the_labels_chunks_and_write_to_zarr(tmp_path):
    """Blocks smaller than the halo were merged (chunks (14, 10) for (7, 7, 7, 3)): uneven
    chunks, which xarray's to_zarr refuses."""
    import bigseg

    lab = bigseg.synth.electrode((24, 30, 28), radius=(4, 1), seed=2, chunks=(7, 11, 13))
    for name, out in (("perturb", bigseg.synth.perturb(lab)), ("xct", bigseg.synth.xct(lab, preset="lab-micro-ct"))):
        assert out.data.chunks == lab.data.chunks, name
        out.to_dataset(name=name).to_zarr(tmp_path / f"{name}.zarr", consolidated=False)


def test_absurd_iterations_are_refused_at_the_call(labels):
    """iterations=10**12 was accepted, then its halo of 2 * iterations voxels hung the compute."""
    from bigseg.synth._perturb import MAX_ITERATIONS

    assert perturb(labels, iterations=MAX_ITERATIONS).shape == labels.shape  # lazy: the cap itself is taken
    for bad in (MAX_ITERATIONS + 1, 10**12):
        with pytest.raises(InputError, match=f"^Expected `iterations` to be at most {MAX_ITERATIONS:,}. Got {bad} "
                                             "instead.$"):
            perturb(labels, iterations=bad)
