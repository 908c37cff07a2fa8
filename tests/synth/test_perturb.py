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
    out = np.zeros(a.shape, bool)
    for ax in range(a.ndim):
        d = np.diff(a, axis=ax) != 0
        lo = [slice(None)] * a.ndim
        hi = [slice(None)] * a.ndim
        lo[ax] = slice(0, -1)
        hi[ax] = slice(1, None)
        out[tuple(lo)] |= d
        out[tuple(hi)] |= d
    return out


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
    """Either side of a face is as likely to move: no phase grows for being thin (choosing among a
    voxel's differing neighbours grew the CBD by 2.4 percentage points over 5 iterations)."""
    a = labels.values
    p = perturb(labels).values
    fa = np.bincount(a.ravel(), minlength=3) / a.size
    fp = np.bincount(p.ravel(), minlength=3) / a.size
    assert np.abs(fa - fp).max() < 0.008
    assert set(np.unique(p)) <= {0, 1, 2}


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
