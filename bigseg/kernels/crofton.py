"""Interface areas by the Cauchy-Crofton formula on the 13 neighbour directions (pure NumPy).

Stereology's ``S_V = 2 P_L``: a surface's area per volume is twice the mean number of its
crossings per unit length of test lines of uniformly random direction. On a voxel grid the test
lines run along the 13 directions to the 26 neighbours (3 axes, 6 face and 4 body diagonals),
through every voxel centre; a crossing is a pair of neighbours along the line holding two
different phases. With ``N_d`` crossings along direction ``d`` (step ``l_d``, in physical units)
each crossing stands for ``v / l_d`` of surface seen along ``d`` (``v`` the voxel volume), and
the directions are averaged with weights ``w_d``: the share of the sphere of directions closest
to ``±d`` (Voronoi cells on the sphere, for the physical directions of anisotropic voxels too),

    A = 2 Σ_d w_d N_d v / l_d

(Legland, Kiêu & Devaux 2007, "Computation of Minkowski measures on 2D and 3D binary images",
Image Anal. Stereol. 26: 83-92). Unlike the smoothed marching cubes it never loses a film one
voxel thick (both of its faces are crossed), and unlike face counting its orientation bias is a
few per cent, not up to +73 %. Pairs with an unlabelled (255) voxel are no crossing.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["DIRECTIONS", "crofton_weights", "crofton_areas", "crofton_slice_areas"]

#: the 13 directions to half of the 26 neighbours (z, y, x)
DIRECTIONS = ((1, 0, 0), (0, 1, 0), (0, 0, 1),
              (0, 1, 1), (0, 1, -1), (1, 0, 1), (1, 0, -1), (1, 1, 0), (1, -1, 0),
              (1, 1, 1), (1, 1, -1), (1, -1, 1), (1, -1, -1))


@functools.lru_cache(maxsize=32)
def crofton_weights(spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """``(w, l)``: each direction's share of the sphere of directions (the points of a dense
    Fibonacci sphere nearest to ``±d`` in physical space; they sum to 1) and its step length
    (physical units)."""
    d = np.asarray(DIRECTIONS, np.float64) * np.asarray(spacing, np.float64)
    length = np.linalg.norm(d, axis=1)
    unit = d / length[:, None]
    n = 400_000  # the shares to ~1e-4
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    pts = np.stack([z, r * np.sin(phi), r * np.cos(phi)], axis=1)
    nearest = np.abs(pts @ unit.T).argmax(axis=1)  # ±d: the larger |cos|
    w = np.bincount(nearest, minlength=len(DIRECTIONS)) / n
    return w, length


def _neighbours(ext: np.ndarray, halo_lo: tuple[int, int, int], halo_hi: tuple[int, int, int],
                d: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """``(a, b, first)``: the codes of every voxel of the block proper whose neighbour at ``+d``
    lies in ``ext`` and the codes of those neighbours; ``first`` = the block-relative z index of
    ``a``'s first plane (``a``'s axis 0 starts there)."""
    src, dst = [], []
    for ax in range(3):
        start, stop = halo_lo[ax], ext.shape[ax] - halo_hi[ax]  # the block proper
        start, stop = max(start, -d[ax]), min(stop, ext.shape[ax] - d[ax])  # its neighbour inside ext
        src.append(slice(start, stop))
        dst.append(slice(start + d[ax], stop + d[ax]))
    return ext[tuple(src)], ext[tuple(dst)], src[0].start - halo_lo[0]


def crofton_areas(ext: np.ndarray, halo_lo: tuple[int, int, int], halo_hi: tuple[int, int, int], k: int,
                  spacing: tuple[float, float, float]) -> np.ndarray:
    """(k, k) symmetric interface areas (physical units²) of the crossings that start at a
    voxel of the block proper.

    ``ext`` holds uint8 phase codes of the block and a halo of ``halo_lo``/``halo_hi`` voxels
    (1 where the volume continues, 0 at its border); each crossing belongs to the voxel it
    starts from (its neighbour at ``+d`` may lie in the halo), so blocks add up to the whole
    volume's areas. Codes ``>= k`` (255: unlabelled) cross nothing.
    """
    w, length = crofton_weights(tuple(float(s) for s in spacing))
    v = float(np.prod(spacing))
    out = np.zeros((k, k), np.float64)
    for d, wd, ld in zip(DIRECTIONS, w, length):
        a_, b_, _ = _neighbours(ext, halo_lo, halo_hi, d)
        m = (a_ != b_) & (a_ < k) & (b_ < k)
        counts = np.bincount(a_[m].astype(np.int64) * k + b_[m], minlength=k * k).reshape(k, k)
        out += (counts + counts.T) * (2.0 * wd * v / ld)
    return out


def crofton_slice_areas(ext: np.ndarray, halo_lo: tuple[int, int, int], halo_hi: tuple[int, int, int], k: int,
                        spacing: tuple[float, float, float], axis: int) -> np.ndarray:
    """:func:`crofton_areas` slice by slice along ``axis``: ``(n, 2, k, k)`` for the block's
    ``n`` slices, ``[s, 0]`` the areas of the crossings within slice ``s``, ``[s, 1]`` of those
    between slices ``s`` and ``s + 1`` (each pair of neighbours once, owned by its voxel lower
    along ``axis``: ``s + 1`` may lie in the halo). Summed over ``s``, both kinds and the
    blocks of a volume, the volume's :func:`crofton_areas` (to float rounding; a block's own sum
    differs where pairs cross its sides, as their owners differ)."""
    w, length = crofton_weights(tuple(float(s) for s in spacing))
    v = float(np.prod(spacing))
    order = (axis,) + tuple(a for a in range(3) if a != axis)  # the slices on axis 0
    ext = np.transpose(ext, order)
    halo_lo, halo_hi = tuple(halo_lo[a] for a in order), tuple(halo_hi[a] for a in order)
    n = ext.shape[0] - halo_lo[0] - halo_hi[0]
    out = np.zeros((n, 2, k, k), np.float64)
    for d, wd, ld in zip(DIRECTIONS, w, length):
        step = tuple(d[a] for a in order)
        if step[0] < 0:  # the same pairs of neighbours, owned by the lower one along the axis
            step = tuple(-c for c in step)
        a_, b_, first = _neighbours(ext, halo_lo, halo_hi, step)
        m = (a_ != b_) & (a_ < k) & (b_ < k)
        s_idx = np.broadcast_to((np.arange(a_.shape[0]) + first)[:, None, None], a_.shape)[m]
        idx = (s_idx.astype(np.int64) * k + a_[m]) * k + b_[m]
        counts = np.bincount(idx, minlength=n * k * k).reshape(n, k, k)
        out[:, step[0]] += (counts + counts.transpose(0, 2, 1)) * (2.0 * wd * v / ld)
    return out
