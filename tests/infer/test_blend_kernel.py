"""kernels.blend reproduces MONAI's window grid and importance map exactly."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from monai.data.utils import compute_importance_map, dense_patch_slices
from monai.inferers.utils import _get_scan_interval

from bigseg.kernels import blend as K


def _monai_starts(shape, patch, overlap):
    interval = _get_scan_interval(shape, patch, len(shape), (overlap,) * len(shape))
    slices = dense_patch_slices(shape, patch, interval)
    return sorted({tuple(s.start for s in sl) for sl in slices})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    shape=st.tuples(*[st.integers(1, 90)] * 3),
    patch=st.tuples(*[st.integers(1, 40)] * 3),
    overlap=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.625, 0.75, 0.9, 0.99]),
)
def test_grid_equals_monai(shape, patch, overlap):
    padded = tuple(s + a + b for s, (a, b) in zip(shape, K.pad_widths(shape, patch)))
    assert all(p <= s for p, s in zip(patch, padded))
    starts = K.patch_starts(padded, patch, overlap)
    assume(np.prod([len(s) for s in starts]) <= 1500)  # keep MONAI's slice lists small
    ours = sorted(zip(*[g.ravel() for g in np.meshgrid(*starts, indexing="ij")]))
    assert [tuple(map(int, o)) for o in ours] == _monai_starts(padded, patch, overlap)
    assert K.count_patches(padded, patch, overlap) == len(ours)
    for s, p, n in zip(starts, patch, padded):  # every voxel covered, last window clamped to the end
        assert s[0] == 0 and s[-1] + p == n and np.all(np.diff(s) > 0)


def test_pad_widths_like_monai():
    assert K.pad_widths((10, 64, 5), (16, 16, 16)) == [(3, 3), (0, 0), (5, 6)]


@pytest.mark.parametrize("patch", [(16, 16, 16), (7, 12, 9), (1, 24, 24), (64, 64, 64), (5, 5)])
@pytest.mark.parametrize("sigma", [0.125, 0.3, 0.05])
def test_importance_map_equals_monai(patch, sigma):
    ours = K.importance_map(patch, "gaussian", sigma)
    ref = compute_importance_map(patch, mode="gaussian", sigma_scale=sigma, dtype=torch.float32).numpy()
    assert ours.dtype == np.float32 and ours.shape == patch
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=0)
    assert ours.min() >= 1e-3 * (1 - 1e-6)
    np.testing.assert_array_equal(K.importance_map(patch, "constant"), np.ones(patch, np.float32))


def test_overlap_regions_reach_several_neighbours():
    # blocks of 4 along an axis of 20 with a patch of 10 (stride 5): starts 0, 5, 10
    bounds = [[0, 4, 8, 12, 16, 20]]
    starts = K.patch_starts((20,), (10,), 0.5)
    own = [K.block_patches(starts, [bounds[0][i]], [bounds[0][i + 1]])[0] for i in range(5)]
    ext = [K.extended_stop([o], [bounds[0][i + 1]], (10,))[0] for i, o in enumerate(own)]
    assert ext == [10, 15, 20, 16, 20]
    reach = K.overlap_regions(bounds, [ext])[0]
    # block 2 [8, 12) receives from blocks 0 (its overhang [8, 10)), 1 ([8, 12)) and itself
    assert reach[2] == [(0, 8, 10), (1, 8, 12), (2, 8, 12)]
    assert reach[4] == [(2, 16, 20), (4, 16, 20)]


def test_accumulate_block_counts_and_sums():
    region = np.zeros((6, 6, 6), np.float32)
    weight = K.importance_map((4, 4, 4), "constant")

    def predict(x):
        return np.full((len(x), 2, 4, 4, 4), 0.5, np.float32)

    own = [np.array([0, 2]), np.array([0]), np.array([1, 2])]
    acc, n = K.accumulate_block(region, (0, 0, 0), own, (4, 4, 4), weight, predict, n_classes=2, batch_size=3)
    assert n == 4 and acc.shape == (2, 6, 6, 6)
    assert acc.sum() == pytest.approx(4 * 64)
    np.testing.assert_allclose(K.normalise_accumulator(acc)[:, 2, 1, 2], [0.5, 0.5])


def test_weight_sum_is_monais_count_map_for_any_block():
    shape, patch = (23, 30, 17), (8, 12, 16)
    starts = K.patch_starts(shape, patch, 0.5)
    w = K.importance_map(patch, "gaussian", 0.125)
    full = np.zeros(shape, np.float32)
    for c in zip(*[g.ravel() for g in np.meshgrid(*starts, indexing="ij")]):
        full[tuple(slice(a, a + p) for a, p in zip(c, patch))] += w
    np.testing.assert_allclose(K.weight_sum((0, 0, 0), shape, starts, patch, w), full, rtol=1e-6)
    np.testing.assert_allclose(K.weight_sum((5, 11, 3), (17, 29, 9), starts, patch, w), full[5:17, 11:29, 3:9], rtol=1e-6)
    acc = np.stack([full * 0.2, full * 0.5])
    out = K.normalise_partial(acc, full, 3)
    np.testing.assert_allclose(out[:, 3, 4, 5], [0.2, 0.5, 0.3], rtol=1e-6)


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_labels_from_partial_is_the_argmax_of_the_probabilities(n_classes):
    from bigseg.kernels.blend import labels_from_partial, normalise_partial

    rng = np.random.default_rng(n_classes)
    w = rng.uniform(0.01, 3, (7, 9, 11)).astype(np.float32)
    p = rng.dirichlet(np.ones(n_classes), size=w.shape).astype(np.float32)
    p[0, 0, :3] = np.float32(1 / n_classes)  # ties: the first maximum wins
    p[1, 1, 1] = np.float32(0)
    acc = np.moveaxis(p, -1, 0)[: n_classes - 1] * w
    ref = normalise_partial(acc, w, n_classes).argmax(0)
    got = labels_from_partial(acc.copy(), w)
    assert got.dtype == np.uint8 and got.shape == w.shape
    np.testing.assert_array_equal(got, ref)
    assert set(np.unique(got)) == set(range(n_classes))  # every class, the last one included


def _softmax_net(seed: int = 0):
    torch.manual_seed(seed)
    conv = torch.nn.Conv3d(1, 3, 3, padding=1)

    def predict(x):
        with torch.inference_mode():
            return conv(x[:, None]).softmax(1)

    return predict


def test_accumulate_block_torch_on_threads_adds_in_order_bit_for_bit():
    """Batches evaluated side by side in a pool (CPU streams) give the sequential sums exactly:
    each thread adds its batch only after the batch before it was added."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(2)
    region = torch.from_numpy(rng.normal(size=(30, 26, 22)).astype(np.float32))
    starts = [np.array([3, 7, 11, 15]), np.array([0, 5, 10]), np.array([2, 6, 9])]  # 36 windows
    weight = torch.from_numpy(K.importance_map((12, 12, 12), "gaussian", 0.125))
    kw = dict(n_classes=3, keep=2, batch_size=5)  # 8 batches, the last one short
    net = _softmax_net()
    calls = itertools.count()

    def slow_evens(x):  # every other batch finishes late: the threads complete out of order
        if next(calls) % 2 == 0:
            time.sleep(0.02)
        return net(x)

    with torch.inference_mode():
        one, n1 = K.accumulate_block_torch(region, (0, 0, 0), starts, (12, 12, 12), weight, net, **kw)
        with ThreadPoolExecutor(3) as pool:
            many, n2 = K.accumulate_block_torch(region, (0, 0, 0), starts, (12, 12, 12), weight, slow_evens,
                                                pool=pool, **kw)
    assert n1 == n2 == 36 and many.shape == (2, 30, 26, 22)
    assert torch.equal(one, many)


def test_accumulate_block_torch_on_threads_raises_the_first_error_without_hanging():
    from concurrent.futures import ThreadPoolExecutor

    calls = []
    net = _softmax_net()

    def predict(x):
        calls.append(len(x))
        if len(calls) == 3:
            raise ValueError("batch 3 failed")
        return net(x)

    region = torch.zeros((20, 20, 20))
    starts = [np.array([0, 4, 8]), np.array([0, 4, 8]), np.array([0, 8])]
    weight = torch.ones((8, 8, 8))
    with ThreadPoolExecutor(2) as pool, torch.inference_mode():
        with pytest.raises(ValueError, match="batch 3 failed"):
            K.accumulate_block_torch(region, (0, 0, 0), starts, (8, 8, 8), weight, predict, n_classes=3,
                                     batch_size=2, pool=pool)
    assert len(calls) < 9  # the batches after the failure were skipped
