"""Whole-array NumPy references for the measure tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def faces_per_axis(lab: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((3, k, k), np.int64)
    for ax in range(3):
        a = np.moveaxis(lab, ax, 0)
        lo, hi = a[:-1].ravel(), a[1:].ravel()
        m = lo != hi
        np.add.at(out[ax], (lo[m], hi[m]), 1)
        out[ax] += out[ax].T.copy()
    return out


def interface_voxels(lab: np.ndarray, k: int) -> np.ndarray:
    """onv[a, b] = voxels of phase a with a 6-neighbour of phase b."""
    onv = np.zeros((k, k), np.int64)
    for b in range(k):
        isb = lab == b
        has = np.zeros(lab.shape, bool)
        for ax in range(3):
            s = [slice(None)] * 3
            d = [slice(None)] * 3
            s[ax], d[ax] = slice(1, None), slice(None, -1)
            has[tuple(d)] |= isb[tuple(s)]
            has[tuple(s)] |= isb[tuple(d)]
        for a in range(k):
            if a != b:
                onv[a, b] = np.count_nonzero((lab == a) & has)
    return onv


def confusion(truth: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    m = truth != 255
    return np.bincount(truth[m].astype(np.int64) * k + pred[m], minlength=k * k).reshape(k, k)


def make_labels(shape=(40, 48, 56), seed=0, k=3) -> np.ndarray:
    """Random spheres of phase 2 in a pore (0) / cbd (1) background, with structure at every scale."""
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.uint8)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    for _ in range(int(np.prod(shape) / 2500)):
        c = rng.uniform(0, shape)
        r = rng.uniform(3, 9)
        lab[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < r * r] = k - 1
    noise = ndi.gaussian_filter(rng.standard_normal(shape), 1.5)
    lab[(lab == 0) & (noise > 0.12)] = 1
    return lab


def particle_face_areas(lab: np.ndarray, ids: np.ndarray, k: int = 3, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """faces[i, c]: area of the faces between particle i + 1 and category c (whole-array NumPy
    count): phase 0..k-1 (the particle's own phase: another particle), k an unlabelled (255)
    voxel, k + 1 the volume border; a face normal to axis a weighs prod(spacing) / spacing[a]."""
    out = np.zeros((int(ids.max()), k + 2))
    pid = np.pad(ids, 1)
    pcode = np.pad(lab.astype(np.int64), 1, constant_values=-1)
    core = (slice(1, -1),) * 3
    for a in range(3):
        for s in (-1, 1):
            nb = list(core)
            nb[a] = slice(1 + s, pid.shape[a] - 1 + s)
            p, q, qc = pid[core], pid[tuple(nb)], pcode[tuple(nb)]
            m = (p > 0) & (q != p)
            cat = np.where(qc < 0, k + 1, np.where(qc == 255, k, qc))
            np.add.at(out, (p[m] - 1, cat[m]), np.prod(spacing) / spacing[a])
    return out


def local_thickness_ref(mask: np.ndarray, spacing, levels: int) -> np.ndarray:
    """Local thickness by brute force, per voxel: the largest j <= levels such that a ball of
    diameter j * s (s the smallest edge) centred on a voxel centre p lies inside the phase's
    voxels and holds the voxel. Voxels beyond the array are of the phase."""
    s = min(spacing)
    centres = np.argwhere(mask) * np.asarray(spacing)
    # the least, over every other voxel centre, of the distance to it less the radius along the
    # line of the ellipsoid inscribed in that voxel (the sphere of radius s/2 for cubic voxels):
    # not only the nearest one, which one just as near across a longer edge may undercut
    pts = np.argwhere(mask)
    others = np.argwhere(~mask) * np.asarray(spacing)
    radius = np.empty(len(pts))
    for i, c in enumerate(centres):
        v = c - others
        dist = np.linalg.norm(v, axis=1)
        radius[i] = (dist - dist / np.linalg.norm(v / (np.asarray(spacing) / 2), axis=1)).min()
    out = np.zeros(mask.shape, int)
    for i in range(0, len(pts), 400):
        dist = np.sqrt((((pts[i:i + 400] * np.asarray(spacing))[:, None, :] - centres[None]) ** 2).sum(-1))
        fits = np.floor((2 * radius[None] + 1e-9) / s)  # the largest whole diameter inside, per centre
        reach = np.ceil((2 * dist - 1e-9) / s)  # the smallest whole diameter that holds the voxel
        best = np.where(reach <= fits, fits, 0).max(1)
        out[tuple(pts[i:i + 400].T)] = np.minimum(best, levels)
    return out
