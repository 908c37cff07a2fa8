"""Gaps found by a hand-made mutation audit of training's loss and data (sparse labels): each
test here fails on a plausible wrong variant of the code that the rest of the suite let through.
Tiny synthetic inputs against PyTorch / NumPy references or exactly known cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from bigseg.train._data import PatchSampler, patch_windows, split_validation
from bigseg.train._loss import confusion, dice_ce_loss, iou_from_confusion


def _soft_dice_reference(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - the mean over classes of (2 |P ∩ T| + s) / (|P| + |T| + s), the sums over every
    labelled voxel of the whole batch (a loop over voxels' classes, no one-hot tensors)."""
    prob = torch.softmax(logits.double(), 1).movedim(1, -1)  # (N, *spatial, C)
    keep = target != 255
    p, t = prob[keep], target[keep]  # (labelled, C), (labelled,)
    scores = []
    for c in range(logits.shape[1]):
        inter = p[t == c, c].sum()
        scores.append((2 * inter + smooth) / (p[:, c].sum() + (t == c).sum() + smooth))
    return 1 - torch.stack(scores).mean()


@pytest.mark.parametrize("shape", [(3, 3, 5, 6), (2, 3, 4, 5, 3)])
def test_soft_dice_is_over_the_whole_batch_with_the_default_smoothing(shape):
    """The Dice term alone (ce_weight 0) is the soft Dice of the batch's labelled voxels taken
    together, per class, smoothed by 1 (not per sample then averaged, nor unsmoothed)."""
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(*shape, generator=g) * 3
    target = torch.randint(0, 3, (shape[0],) + shape[2:], generator=g)
    target[torch.rand(target.shape, generator=g) < 0.3] = 255
    target[0][target[0] != 255] = 0  # samples whose classes differ: per-sample Dice reads otherwise
    got = dice_ce_loss(logits, target, ce_weight=0.0)
    assert float(got) == pytest.approx(float(_soft_dice_reference(logits, target)), abs=1e-5)
    both = dice_ce_loss(logits, target, dice_weight=0.5, ce_weight=2.0)
    want = 0.5 * _soft_dice_reference(logits, target) + 2.0 * F.cross_entropy(logits, target, ignore_index=255)
    assert float(both) == pytest.approx(float(want), abs=1e-5)


def test_iou_of_a_known_confusion_matrix():
    """IoU = TP / (TP + FP + FN): rows truth, columns prediction; NaN for a class in neither."""
    cm = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    iou = iou_from_confusion(cm)
    np.testing.assert_allclose(iou[:2], [3 / 6, 4 / 7])
    assert np.isnan(iou[2])


def test_confusion_leaves_out_unlabelled_truth_only():
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, (5, 6, 7)).astype(np.uint8)
    truth[rng.random(truth.shape) < 0.4] = 255
    pred = rng.integers(0, 3, truth.shape).astype(np.uint8)
    want = np.zeros((3, 3), np.int64)
    for t, p in zip(truth.ravel(), pred.ravel()):
        if t != 255:
            want[t, p] += 1
    np.testing.assert_array_equal(confusion(truth, pred, 3), want)


def test_validation_takes_the_rounded_share_of_labelled_slices():
    """10 labelled slices at val_fraction 0.27: round(2.7) = 3 slices held back, whole."""
    lab = np.full((12, 5, 6), 255, np.uint8)
    lab[1:11, 1:4, 1:5] = 2
    tr, va = split_validation(lab, axis=0, val_fraction=0.27, seed=1)
    held = np.flatnonzero((va != 255).any((1, 2)))
    assert len(held) == 3 and (tr[held] == 255).all() and (va[held] == lab[held]).all()


def test_one_labelled_slice_holds_back_its_last_rows_by_the_fraction():
    """One labelled slice of 10 labelled rows at val_fraction 0.3: its last 3 rows validate."""
    lab = np.full((3, 12, 5), 255, np.uint8)
    lab[1, 1:11, 1:4] = 1
    tr, va = split_validation(lab, axis=0, val_fraction=0.3, seed=0)
    rows = np.flatnonzero((va[1] != 255).any(1))
    np.testing.assert_array_equal(rows, [8, 9, 10])
    np.testing.assert_array_equal(np.flatnonzero((tr[1] != 255).any(1)), np.arange(1, 8))


@pytest.mark.parametrize("patch", [(8, 8), (4, 8, 8)])
def test_patches_past_the_volume_have_unlabelled_labels_aligned_with_the_image(patch):
    """A fully labelled volume smaller than the patch: the voxels a patch takes beyond the volume
    (its padding) are unlabelled, and every labelled one is the label of the image voxel beside it
    (image = flat index, label = index % 3)."""
    shape = (3, 6, 6)
    img = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    lab = (np.arange(np.prod(shape)) % 3).astype(np.uint8).reshape(shape)
    s = PatchSampler(img, lab, patch, axis=0, n_classes=3)
    x, y = s.sample(20, np.random.default_rng(0))
    inside = int(np.prod([min(p, n) for p, n in zip(patch, shape[-len(patch):])]))
    for xi, yi in zip(x[:, 0], y):
        keep = yi != 255
        assert 0 < keep.sum() <= inside
        np.testing.assert_array_equal(yi[keep], xi[keep].astype(np.int64) % 3)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_plane_windows_are_the_labelled_box_plus_a_quarter_patch(axis):
    """One labelled slice, its labels in rows 5..9 and columns 6..12 of the plane; patch (8, 12):
    the window is rows 3..11 (margin 8 // 4 = 2) and columns 3..15 (12 // 4 = 3), on that slice."""
    plane = np.full((20, 24), 255, np.uint8)
    plane[5:10, 6:13] = 1
    lab = np.full((4, 20, 24), 255, np.uint8)
    lab[2] = plane
    lab = np.moveaxis(lab, 0, axis)
    (win,) = patch_windows(lab, (8, 12), axis=axis)
    want = [slice(3, 12), slice(3, 16)]
    want.insert(axis, slice(2, 3))
    assert win == tuple(want)


def test_cube_windows_are_centred_on_a_labelled_voxel():
    lab = np.full((20, 21, 22), 255, np.uint8)
    lab[10, 11, 3] = 0  # near the low x side: clipped into the volume
    (win,) = patch_windows(lab, (8, 6, 8))
    assert win == (slice(6, 14), slice(8, 14), slice(0, 8))

