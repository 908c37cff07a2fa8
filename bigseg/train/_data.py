"""Training data from sparse labels: normalisation, validation split, patch sampling, scoring."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..io import UNLABELLED, as_volume
from ..io._volume import given_values, label_values_error, warn_other_grid, warn_unmarked
from ._loss import confusion

__all__ = ["normalize_image", "load_pair", "split_validation", "PatchSampler", "patch_windows"]


def normalize_image(image: Any, *, low: float = 0.5, high: float = 99.5,
                    fov: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """In-memory float32 copy of ``image`` normalised exactly as inference input must be:
    :func:`bigseg.filters.normalize` (global ``low``/``high`` percentiles → 0/1, clipped).
    With a (y, x) field of view ``fov``, as :func:`bigseg.infer.segment` prepares it: the
    percentiles from the inside, the outside filled with noise of the inside's moments.
    Returns (array, value_at_low, value_at_high)."""
    import dask

    from ..filters import normalize
    from ..io import fill_outside_like_inside

    with dask.config.set(scheduler="synchronous"):
        try:
            out = normalize(image, low=low, high=high, mask=fov)
        except InputError as exc:  # (said as normalize's `vol`)
            raise type(exc)(str(exc).replace("`vol`", "`image`")) from None
        lo, hi = out.attrs["normalize"]
        if fov is not None:
            out = fill_outside_like_inside(out, fov)
        arr = np.asarray(out.data.compute(), dtype=np.float32)
    return arr, float(lo), float(hi)


def load_pair(image: Any, labels: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated in-memory (z, y, x) float32 image and uint8 labels (255 = unlabelled).

    A (t, z, y, x) series with labels in one time step only (e.g. slices annotated in one scan of
    an operando series) trains on that scan."""
    img = as_volume(image, name="image", allow_series=True)
    lab = as_volume(labels, name="labels", allow_series=True)
    if img.shape != lab.shape:
        raise InputError(f"Expected `labels` of the same shape as `image` {img.shape}. Got {lab.shape} instead.")
    warn_other_grid(image, img, "image", labels, lab, "labels", stacklevel=4,
                    then="Voxels are paired with their labels index by index.")
    if not np.issubdtype(lab.dtype, np.integer):
        raise InputError(f"Expected `labels` to have an integer dtype. Got {lab.dtype} instead.")
    if lab.ndim == 4:  # a series: the one scan with annotations
        has = np.asarray((lab.data != UNLABELLED).any(axis=(1, 2, 3)).compute())
        steps = np.flatnonzero(has).tolist()
        if len(steps) != 1:
            raise InputError(f"Expected `labels` of a series to annotate one time step (training reads one scan). "
                             f"Got labelled voxels at t index {steps} instead: pass image.isel(t=k) and "
                             "labels.isel(t=k).")
        img, lab = img.isel(t=steps[0]), lab.isel(t=steps[0])
    lab_np = np.asarray(lab.data.compute() if hasattr(lab.data, "compute") else lab.data)
    bad = (lab_np != UNLABELLED) & ((lab_np < 0) | (lab_np >= n_classes))
    if bad.any():
        raise label_values_error(np.unique(lab_np[bad])[:5].tolist(), n_classes, lab,
                                 marked=bool((lab_np == UNLABELLED).any()),
                                 present=given_values(np.unique(lab_np[lab_np != UNLABELLED]).tolist(), lab))
    lab_np = lab_np.astype(np.uint8)
    warn_unmarked(np.bincount(lab_np.ravel(), minlength=256), unlabelled=lab.attrs.get("unlabelled_value", UNLABELLED))
    if not (lab_np != UNLABELLED).any():
        raise InputError("Expected `labels` to contain labelled voxels (values other than 255). Got none.")
    img_np = np.asarray(img.data.compute() if hasattr(img.data, "compute") else img.data, dtype=np.float32)
    return img_np, lab_np


def split_validation(labels: np.ndarray, *, axis: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold back labelled slices (along ``axis``) for validation.

    With ≥ 2 labelled slices, ``round(val_fraction × n)`` of them (at least 1, at most n − 1),
    chosen with ``seed``, go to validation. With a single labelled slice its labelled voxels
    are split instead: the last ``val_fraction`` of its labelled rows along the next axis (at
    least one row kept for training, at most all but one). Returns
    (train_labels, val_labels), each 255 where the other set is.
    """
    lab = np.moveaxis(labels, axis, 0)
    labelled = np.flatnonzero((lab != UNLABELLED).reshape(lab.shape[0], -1).any(1))
    train = lab.copy()
    val = np.full_like(lab, UNLABELLED)
    if val_fraction <= 0:
        return labels, np.full_like(labels, UNLABELLED)
    if len(labelled) >= 2:
        k = int(min(len(labelled) - 1, max(1, round(val_fraction * len(labelled)))))
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(labelled, size=k, replace=False))
        val[pick] = lab[pick]
        train[pick] = UNLABELLED
    else:
        s = labelled[0]
        rows = np.flatnonzero((lab[s] != UNLABELLED).any(tuple(range(1, lab[s].ndim))))
        # at least the first labelled row trains, as at least one slice does above (a large
        # val_fraction held the whole slice back, leaving nothing to train on)
        cut = rows[max(1, int(np.floor(len(rows) * (1 - val_fraction))))] if len(rows) > 1 else rows[0] + 1
        val[s, cut:] = lab[s, cut:]
        train[s, cut:] = UNLABELLED
    return np.moveaxis(train, 0, axis), np.moveaxis(val, 0, axis)


class PatchSampler:
    """Random patches centred on labelled voxels, class-balanced.

    For a 2D model (``len(patch) == 2``) patches are planes perpendicular to ``axis`` through a
    labelled voxel; for a 3D model, cubes around one. The centre voxel's class is drawn
    uniformly among the classes present, then a voxel of that class, so minority phases (CBD)
    are seen as often as the majority (the LRCS-Net paper's "major class pitfall").
    """

    def __init__(self, image: np.ndarray, labels: np.ndarray, patch: tuple[int, ...], *, axis: int = 0, n_classes: int = 3) -> None:
        self.nd = len(patch)
        self.patch = tuple(int(p) for p in patch)
        if self.nd == 2:
            image = np.moveaxis(image, axis, 0)
            labels = np.moveaxis(labels, axis, 0)
            full = (1,) + self.patch
        else:
            full = self.patch
        self.full = full
        self.half = tuple(p // 2 for p in full)
        pad = [(h, p - h) for h, p in zip(self.half, full)]
        self.image = np.pad(image, pad, mode="reflect" if all(s > max(p) for s, p in zip(image.shape, pad)) else "edge")
        self.labels = np.pad(labels, pad, mode="constant", constant_values=UNLABELLED)
        flat = labels.ravel()
        self.by_class = [np.flatnonzero(flat == c) for c in range(n_classes)]
        self.present = [c for c in range(n_classes) if len(self.by_class[c])]
        if not self.present:
            raise InputError("Expected labelled voxels for training. Got none (after holding back validation).")
        self.shape = labels.shape

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` patches: (n, 1, *patch) float32 images and (n, *patch) int64 labels."""
        xs = np.empty((n, 1) + self.patch, np.float32)
        ys = np.empty((n,) + self.patch, np.int64)
        for i in range(n):
            c = self.present[int(rng.integers(len(self.present)))]
            idx = self.by_class[c][int(rng.integers(len(self.by_class[c])))]
            centre = np.unravel_index(idx, self.shape)
            jitter = [0 if f == 1 else int(rng.integers(-(f // 4), f // 4 + 1)) for f in self.full]
            sl = tuple(
                slice(int(np.clip(ci + j, 0, s - 1)), int(np.clip(ci + j, 0, s - 1)) + f)
                for ci, j, s, f in zip(centre, jitter, self.shape, self.full)
            )
            xs[i, 0] = self.image[sl].reshape(self.patch)
            ys[i] = self.labels[sl].reshape(self.patch)
        return xs, ys


def patch_windows(labels: np.ndarray, patch: tuple[int, ...], *, axis: int = 0, max_windows: int = 24, seed: int = 0) -> list[tuple[slice, ...]]:
    """Fixed validation windows (slices into the volume) covering labelled voxels.

    2D: whole-plane windows through labelled slices (cropped to the labelled bounding box plus
    a margin, at most 512 × 512); 3D: cubes of ``patch`` centred on labelled voxels."""
    rng = np.random.default_rng(seed)
    mask = labels != UNLABELLED
    out: list[tuple[slice, ...]] = []
    if len(patch) == 2:
        m = np.moveaxis(mask, axis, 0)
        for s in np.flatnonzero(m.reshape(m.shape[0], -1).any(1))[:max_windows]:
            ys, xs = np.nonzero(m[s])
            win = []
            for lo_hi, size, p in ((ys, m.shape[1], patch[0]), (xs, m.shape[2], patch[1])):
                lo, hi = int(lo_hi.min()), int(lo_hi.max()) + 1
                lo, hi = max(0, lo - p // 4), min(size, hi + p // 4)
                if hi - lo > 512:
                    mid = (lo + hi) // 2
                    lo, hi = mid - 256, mid + 256
                win.append(slice(lo, hi))
            sl = [slice(None)] * 3
            sl[axis] = slice(int(s), int(s) + 1)
            other = [a for a in range(3) if a != axis]
            sl[other[0]], sl[other[1]] = win
            out.append(tuple(sl))
        return out
    idx = np.flatnonzero(mask.ravel())
    pick = rng.choice(idx, size=min(max_windows, len(idx)), replace=False)
    for i in np.sort(pick):
        c = np.unravel_index(i, mask.shape)
        sl = []
        for ci, p, s in zip(c, patch, mask.shape):
            lo = int(np.clip(ci - p // 2, 0, max(0, s - p)))
            sl.append(slice(lo, lo + p))
        out.append(tuple(sl))
    return out


@torch.no_grad()
def score_windows(model: torch.nn.Module, image: np.ndarray, labels: np.ndarray, windows: list[tuple[slice, ...]], *,
                  axis: int, n_classes: int, device: torch.device, ndim: int) -> np.ndarray:
    """Confusion matrix (C, C) of ``model`` on the labelled voxels of ``windows``, each voxel
    once (where windows overlap, as 3D cubes around labelled voxels may, the first one's)."""
    cm = np.zeros((n_classes, n_classes), np.int64)
    was = model.training
    model.eval()
    seen = np.zeros(labels.shape, bool)
    for sl in windows:
        x = image[sl]
        y = np.where(seen[sl], UNLABELLED, labels[sl])
        seen[sl] = True
        if ndim == 2:
            x = np.moveaxis(x, axis, 0)[0]
            y = np.moveaxis(y, axis, 0)[0]
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None].to(device)
        pred = model(t).argmax(1)[0].cpu().numpy()
        cm += confusion(y, pred, n_classes)
    model.train(was)
    return cm
