"""Loss and scores for sparse labels: voxels valued ``ignore_index`` (255) take no part."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["dice_ce_loss", "confusion", "iou_from_confusion"]


def dice_ce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = 255,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
    smooth: float = 1.0,
) -> torch.Tensor:
    """Soft Dice + cross-entropy over the labelled voxels only.

    Parameters
    ----------
    logits : (N, C, *spatial) float logits
    target : (N, *spatial) int64 class indices; ``ignore_index`` marks unlabelled voxels
    dice_weight, ce_weight : weights of the two terms (the LRCS-Net paper trains with Dice;
        cross-entropy is added for stable early gradients, as in nnU-Net)
    smooth : additive smoothing of the soft Dice (per class, over the whole batch)

    Returns
    -------
    scalar loss. Unlabelled voxels contribute nothing: their logits receive exactly zero
    gradient. A batch without any labelled voxel gives 0 (still connected to the graph).
    """
    c = logits.shape[1]
    logits = logits.float()
    mask = target != ignore_index
    n = mask.sum()
    if int(n) == 0:
        return logits.sum() * 0.0
    safe = torch.where(mask, target, torch.zeros_like(target))
    # cross-entropy: mean over labelled voxels (reduction by hand so masked logits get 0 grad)
    logp = F.log_softmax(logits, 1)
    nll = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    ce = torch.where(mask, nll, torch.zeros_like(nll)).sum() / n
    # soft Dice per class over labelled voxels
    prob = logp.exp()
    m = mask.unsqueeze(1).to(prob.dtype)
    onehot = F.one_hot(safe, c).movedim(-1, 1).to(prob.dtype) * m
    pm = prob * m
    dims = [0] + list(range(2, logits.ndim))
    inter = (pm * onehot).sum(dims)
    denom = pm.sum(dims) + onehot.sum(dims)
    dice = 1.0 - ((2 * inter + smooth) / (denom + smooth)).mean()
    return ce_weight * ce + dice_weight * dice


def confusion(truth: np.ndarray, pred: np.ndarray, n_classes: int, *, ignore_index: int = 255) -> np.ndarray:
    """(truth, pred) counts over voxels whose truth is not ``ignore_index``: (C, C) int64.

    Parameters
    ----------
    truth, pred : integer label arrays of one size (NumPy), values below ``n_classes``.
    n_classes : C.
    ignore_index : the truth value of voxels left out (default 255).
    """
    t = np.asarray(truth).ravel()
    p = np.asarray(pred).ravel()
    keep = t != ignore_index
    idx = t[keep].astype(np.int64) * n_classes + p[keep].astype(np.int64)
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def iou_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class intersection over union, NaN for a class absent from truth and prediction.

    Parameters
    ----------
    cm : (C, C) confusion counts, rows the truth (as :func:`confusion` gives them).

    Returns
    -------
    (C,) float64 IoU.
    """
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1) - np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)
