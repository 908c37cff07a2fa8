"""Per-block kernels: the branch-free path (<= 7 phases) equals the general one and NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from ._measure_ref import faces_per_axis, interface_voxels

from bigseg.kernels.metrics import histogram, label_stats


@pytest.mark.parametrize("halo", [((0, 0, 0), (0, 0, 0)), ((1, 0, 1), (0, 1, 1)), ((1, 1, 1), (1, 1, 1))], ids=str)
def test_small_k_path_equals_general_path(labels, halo):
    ext = np.ascontiguousarray(labels[:20, 5:30, 3:40])
    ext[0, 0, :5] = 9  # a value beyond the phases: only in the histogram
    h3, f3, o3 = label_stats(ext, *halo, 3)
    h9, f9, o9 = label_stats(ext, *halo, 10)  # general kernel (more than 7 phases)
    np.testing.assert_array_equal(h3, h9)
    np.testing.assert_array_equal(f3, f9[:, :3, :3])
    np.testing.assert_array_equal(o3, o9[:3, :3])
    lo, hi = halo
    core = ext[lo[0]:ext.shape[0] - hi[0], lo[1]:ext.shape[1] - hi[1], lo[2]:ext.shape[2] - hi[2]]
    np.testing.assert_array_equal(h3, histogram(core))


def test_whole_block_equals_numpy(labels):
    h, f, o = label_stats(labels, (0, 0, 0), (0, 0, 0), 3)
    ref = faces_per_axis(labels, 3)
    np.testing.assert_array_equal(f + f.transpose(0, 2, 1), ref)
    np.testing.assert_array_equal(o, interface_voxels(labels, 3))
    np.testing.assert_array_equal(h[:3], np.bincount(labels.ravel(), minlength=3))
