"""The window (edge) effect of the area estimators, as the README quotes it.

Each estimator counts only what lies inside the volume (faces between its voxels, marching-cubes
cells between its outermost voxel centres, Crofton's voxel pairs), so the area per volume of a
structure larger than the volume reads low by about c / L on an L-voxel cube. Crops of a default
electrode are measured against their faces counted with half the faces across the crop's
boundary (the count an endless volume would give them)."""

from __future__ import annotations

import numpy as np

from bigseg import synth
from bigseg.measure import surface_area


def _faces_endless(big: np.ndarray, o: np.ndarray, n: int) -> float:
    """Faces of the active phase inside the crop at ``o`` of edge ``n``, plus half of those
    across its boundary."""
    c = big[tuple(slice(a - 1, a + n + 1) for a in o)] == 2
    inside = across = 0
    for ax in range(3):
        lo = [slice(1, -1)] * 3
        hi = [slice(1, -1)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        d = c[tuple(lo)] != c[tuple(hi)]  # n + 1 gaps along ax
        pick = [slice(None)] * 3
        pick[ax] = slice(1, -1)
        inside += int(d[tuple(pick)].sum())
        for end in (0, -1):
            pick[ax] = end
            across += int(d[tuple(pick)].sum())
    return inside + 0.5 * across


def test_area_per_volume_reads_low_by_a_window_term():
    big = synth.electrode((96, 96, 96), seed=7, chunks=96).values
    rng = np.random.default_rng(1)
    methods = ("faces", "crofton", "marching_cubes")
    sizes = np.array([16, 24, 32, 48])
    ratios = []
    for n in sizes:
        per = []
        for o in rng.integers(1, 96 - n - 1, (12, 3)):
            crop = big[tuple(slice(a, a + n) for a in o)]
            ref = _faces_endless(big, o, n)
            per.append([surface_area(crop, phase=2, method=m) / ref for m in methods])
        ratios.append(np.mean(per, axis=0))
    design = np.stack([np.ones(len(sizes)), -1.0 / sizes], axis=1)
    coef = np.linalg.lstsq(design, np.asarray(ratios), rcond=None)[0]
    c = dict(zip(methods, coef[1] / coef[0]))  # ratio(L) = r (1 - c / L)
    assert abs(coef[0][0] - 1) < 0.01  # faces: nothing but the window term
    assert 0.8 < c["faces"] < 1.25
    assert 1.5 < c["crofton"] < 2.3
    assert 2.6 < c["marching_cubes"] < 3.7
