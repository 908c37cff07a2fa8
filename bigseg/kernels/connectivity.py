"""Per-block kernel of phase connectivity: each phase's components and what they touch.

Pure NumPy/SciPy on one block plus a one-voxel halo; :mod:`bigseg.measure._connectivity` joins
the components across blocks (:func:`bigseg.kernels.particles.stitch_components`, which joins
the particles' too) and adds up their voxels and contacts.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["component_contacts", "CONTACTS"]

#: What a component may touch: the six faces of the volume (low, high per axis z, y, x), then
#: unlabelled voxels (255: outside the field of view), the sample's edge where it has one.
CONTACTS = ("z0", "z1", "y0", "y1", "x0", "x1", "unlabelled")

_FACES = ndi.generate_binary_structure(3, 1)


def component_contacts(ext: np.ndarray, halo_lo: tuple[int, ...], shape: tuple[int, ...],
                       on_border: tuple[tuple[bool, bool], ...], k: int,
                       unlabelled: int = 255) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """The 6-connected components of every phase ``0..k-1`` of one block and what they touch.

    ``ext`` is the block with a halo of at most one voxel (``halo_lo`` voxels before it on each
    axis; ``shape`` the block's own), ``on_border[axis] = (low, high)`` whether the block's sides
    are faces of the volume. The components of all phases are numbered together, phase by
    phase (those of phase ``p`` are ``counts[:p].sum() + 1 ... counts[:p + 1].sum()``).

    Returns ``(counts, faces, voxels, contacts)``: ``(k,)`` components per phase; the labels on
    the block's six sides (low, high per axis z, y, x; 0 = none) for stitching; ``(n,)`` voxels
    of each component; ``(n, len(CONTACTS))`` bool: a face of the volume when one of its voxels
    lies on it, unlabelled when one has an unlabelled face neighbour (in the halo too: across
    block borders).
    """
    inner = tuple(slice(lo, lo + n) for lo, n in zip(halo_lo, shape))
    core = ext[inner]
    outside = ext == unlabelled
    near = ndi.binary_dilation(outside, structure=_FACES)[inner] if outside.any() else None
    ids = np.zeros(core.shape, np.int32)
    counts = np.zeros(k, np.int64)
    for p in range(k):
        lab, n = ndi.label(core == p, structure=_FACES)
        if n:
            np.add(ids, lab + int(counts.sum()), out=ids, where=lab > 0)
        counts[p] = n
    n = int(counts.sum())
    faces = tuple(f for a in range(3) for f in (np.take(ids, 0, axis=a), np.take(ids, -1, axis=a)))
    voxels = np.bincount(ids.ravel(), minlength=n + 1)[1:].astype(np.int64)
    contacts = np.zeros((n, len(CONTACTS)), bool)
    for j, face in enumerate(faces):  # z0, z1, y0, y1, x0, x1
        if on_border[j // 2][j % 2]:
            contacts[face[face > 0] - 1, j] = True
    if near is not None:
        contacts[ids[near & (ids > 0)] - 1, len(CONTACTS) - 1] = True
    return counts, faces, voxels, contacts
