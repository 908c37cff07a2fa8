"""A small sphere phantom: pore (dark), CBD shells/blobs (slightly brighter), active spheres (bright)."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi


def phantom(shape=(48, 56, 64), *, seed: int = 0, noise: float = 0.06, blur: float = 1.0):
    """(truth uint8 labels 0 pore / 1 cbd / 2 active, grey float32 image)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    truth = np.zeros(shape, np.uint8)
    n = int(np.prod(shape) / 2500)
    centres = rng.uniform(0, 1, (n, 3)) * np.array(shape)
    radii = rng.uniform(4, 8, n)
    dist = np.full(shape, np.inf, np.float32)
    for c, r in zip(centres, radii):
        d = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) - r
        dist = np.minimum(dist, d)
    # CBD: a shell around the particles plus small blobs
    truth[dist < 2.5] = 1
    for _ in range(n):
        c = rng.uniform(0, 1, 3) * np.array(shape)
        truth[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 < rng.uniform(2, 4) ** 2] = 1
    truth[dist < 0] = 2
    levels = np.array([0.1, 0.4, 0.85], np.float32)
    grey = ndi.gaussian_filter(levels[truth], blur) + rng.normal(0, noise, shape)
    return truth, grey.astype(np.float32)


def iou(truth: np.ndarray, pred: np.ndarray, k: int) -> float:
    a, b = truth == k, pred == k
    return float((a & b).sum() / max((a | b).sum(), 1))
