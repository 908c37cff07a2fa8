"""Gaps found by a hand-made mutation audit of the measurement kernels: each test here fails on a
plausible wrong variant of the code (a cyclic phase order read as its inverse, a weight on the
wrong axis, ...) that the rest of the suite let through. Tiny synthetic volumes with awkward
chunking, compared with whole-array NumPy / SciPy / scikit-image references."""

from __future__ import annotations

import itertools
import math
import warnings

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage as ndi
from scipy.spatial import SphericalVoronoi
from skimage.measure import label, marching_cubes, mesh_surface_area, regionprops

from bigseg import measure
from bigseg.errors import InputError
from bigseg.io import make_volume
from bigseg.kernels import blend as K
from bigseg.kernels.crofton import DIRECTIONS, crofton_weights
from bigseg.kernels.distance import squared_distance
from bigseg.kernels.metrics import interface_mask, slice_counts
from bigseg.kernels.particles import label_points, mutual_matches, particle_markers
from bigseg.measure import interfaces, particles, specific_surface_area, surface_area
from bigseg.measure._particles import _beyond_halo

from ._measure_ref import make_labels
from .test_scores_qa import _random_pair as _qa_pair
from .test_unlabelled import _mc_ref

PHASES = ["pore", "cbd", "active"]
CYCLE = ["cbd", "active", "pore"]  # a 3-cycle of PHASES: not its own inverse (a reversal is)
SHAPE = (9, 11, 13)


def _named(a: np.ndarray, phases: list[str] | None, chunks=(4, 5, 6)) -> xr.DataArray:
    return xr.DataArray(da.from_array(a, chunks=chunks), dims=("z", "y", "x"),
                        attrs={} if phases is None else {"phases": phases})


def _recode(a: np.ndarray, src: list[str], dst: list[str]) -> np.ndarray:
    """Label values of phase names ``src`` rewritten as the values of the same names in ``dst``
    (255 kept)."""
    lut = np.arange(256, dtype=np.uint8)
    lut[:len(src)] = [dst.index(n) for n in src]
    return lut[a]


def _random_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return _qa_pair(seed, SHAPE)


def _ref_confusion(truth: np.ndarray, pred: np.ndarray, k: int = 3) -> np.ndarray:
    """(k, k + 1): rows truth value, columns pred value, last column pred unlabelled."""
    m = truth != 255
    p = np.where(pred[m] == 255, k, pred[m]).astype(np.int64)
    return np.bincount(truth[m].astype(np.int64) * (k + 1) + p, minlength=k * (k + 1)).reshape(k, k + 1)


def _ref_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(cm[:, :-1]).astype(float)
    fp = cm[:, :-1].sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    return {"iou": tp / (tp + fp + fn), "dice": 2 * tp / (2 * tp + fp + fn), "precision": tp / (tp + fp),
            "recall": tp / (tp + fn), "support": cm.sum(axis=1), "accuracy": tp.sum() / cm.sum()}


# --------------------------------------------------------------------------------------------
# scores / confusion / agreement: phases named in a cyclic order
# --------------------------------------------------------------------------------------------
def test_scores_match_a_prediction_naming_its_phases_in_a_cyclic_order():
    truth, pred = _random_pair(0)
    cyc = _recode(pred, PHASES, CYCLE)  # the same segmentation, stored in CYCLE's values
    got = measure.scores(_named(truth, PHASES), _named(cyc, CYCLE))
    assert list(got.phase.values) == CYCLE
    ref = _ref_scores(_ref_confusion(truth, pred))
    for key in ("iou", "dice", "precision", "recall", "support"):
        np.testing.assert_allclose(got[key].sel(phase=PHASES).values, ref[key], rtol=1e-12, err_msg=key)
    np.testing.assert_allclose(float(got.accuracy), ref["accuracy"], rtol=1e-12)


def test_confusion_of_a_truth_naming_its_phases_in_a_cyclic_order():
    truth, pred = _random_pair(1)
    cyc = _recode(truth, PHASES, CYCLE)
    cm = measure.confusion(_named(cyc, CYCLE), _named(pred, PHASES))
    assert list(cm.truth_phase.values) == list(cm.pred_phase.values) == PHASES
    np.testing.assert_array_equal(cm.values, _ref_confusion(truth, pred)[:, :-1])


def test_agreement_reads_a_segmentation_named_in_a_cyclic_order_by_name():
    truth, a = _random_pair(2)
    _, b = _random_pair(3)
    _, c = _random_pair(4)
    got = measure.agreement([_named(a, PHASES), _named(_recode(b, PHASES, CYCLE), CYCLE), _named(c, PHASES)],
                            truth=_named(truth, PHASES))
    assert list(got.phase.values) == PHASES
    segs = [a, b, c]
    for i, s in enumerate(segs):
        lab = s[s != 255]
        np.testing.assert_allclose(got.volume_fraction.isel(segmentation=i).values,
                                   np.bincount(lab, minlength=3) / lab.size, rtol=1e-12)
        ref = _ref_scores(_ref_confusion(truth, s))
        for key in ("iou", "dice", "precision", "recall", "accuracy"):
            np.testing.assert_allclose(got[key].isel(segmentation=i).values, ref[key], rtol=1e-12, err_msg=key)
    for p, (i, j) in enumerate([(0, 1), (0, 2), (1, 2)]):
        both = (segs[i] != 255) & (segs[j] != 255)
        want = np.count_nonzero((segs[i] != segs[j]) & both) / np.count_nonzero(both)
        np.testing.assert_allclose(got.differing_fraction.values[p], want, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# kernels.metrics
# --------------------------------------------------------------------------------------------
def _brute_interface(lab: np.ndarray, ignore: int | None) -> np.ndarray:
    """Voxels with a 6-neighbour (inside the array) of another label, both not ``ignore``: by
    visiting every voxel's neighbours."""
    out = np.zeros(lab.shape, bool)
    for idx in np.ndindex(*lab.shape):
        v = lab[idx]
        if ignore is not None and v == ignore:
            continue
        for ax in range(3):
            for step in (-1, 1):
                q = list(idx)
                q[ax] += step
                if 0 <= q[ax] < lab.shape[ax]:
                    w = lab[tuple(q)]
                    if w != v and (ignore is None or w != ignore):
                        out[idx] = True
    return out


def test_interface_mask_marks_both_voxels_of_every_pair():
    rng = np.random.default_rng(5)
    lab = rng.integers(0, 3, (5, 6, 7)).astype(np.uint8)
    lab[rng.random(lab.shape) < 0.15] = 255
    for ignore in (None, 255):
        np.testing.assert_array_equal(interface_mask(lab, ignore=ignore), _brute_interface(lab, ignore))
    one = np.zeros((3, 4, 5), np.uint8)
    one[1, 2, 3] = 1  # a lone voxel: it and its six neighbours
    want = np.zeros(one.shape, bool)
    for d in [(0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]:
        want[1 + d[0], 2 + d[1], 3 + d[2]] = True
    np.testing.assert_array_equal(interface_mask(one), want)


def test_marching_cubes_next_to_an_unlabelled_region_that_varies_along_z():
    """The field-of-view tests mask a cylinder, the same in every z slice: a cell keeping or
    dropping by the wrong corner or a keep mask shifted along z read the same there. Here the
    unlabelled region is a ball and a box corner (a cell with one unlabelled corner, at its
    high z, y, x end), against scikit-image's mesh of the cells with 8 labelled corners."""
    lab = make_labels((16, 17, 18), seed=3)
    zz, yy, xx = np.ogrid[:16, :17, :18]
    out = ((zz - 5) ** 2 + (yy - 8) ** 2 + (xx - 6) ** 2 < 12) | ((zz >= 10) & (yy >= 11) & (xx >= 12))
    masked = np.where(out, 255, lab).astype(np.uint8)
    fields = [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]
    a = _mc_ref(masked, fields)
    for chunks in ((16, 17, 18), (5, 6, 7)):
        ds = interfaces(da.from_array(masked, chunks=chunks), method="marching_cubes")
        for i, j in itertools.combinations(range(3), 2):
            assert ds.area.values[i, j] == pytest.approx(0.5 * (a[(i,)] + a[(j,)] - a[(i, j)]), rel=1e-6)


def test_slice_counts_per_phase_and_unlabelled_along_every_axis():
    rng = np.random.default_rng(6)
    lab = rng.integers(0, 3, (4, 5, 6)).astype(np.uint8)
    lab[rng.random(lab.shape) < 0.2] = 255
    lab[0, 0, 0] = 7  # beyond the phases, not unlabelled: in no column
    for axis in range(3):
        got = slice_counts(lab, axis, 3)
        a = np.moveaxis(lab, axis, 0).reshape(lab.shape[axis], -1)
        want = np.stack([(a == v).sum(axis=1) for v in (0, 1, 2, 255)], axis=1)
        np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------------
# kernels.crofton
# --------------------------------------------------------------------------------------------
def test_crofton_weights_are_the_spherical_voronoi_shares_of_the_directions():
    """Each direction's weight is the share of the sphere nearer to +-d than to the other 24
    directions (physical directions for anisotropic voxels): SciPy's exact spherical Voronoi
    cell areas, to the documented ~1e-4."""
    for sp in [(1.0, 1.0, 1.0), (1.0, 1.5, 2.0), (3.0, 1.0, 1.0)]:
        d = np.asarray(DIRECTIONS, np.float64) * np.asarray(sp)
        u = d / np.linalg.norm(d, axis=1)[:, None]
        area = SphericalVoronoi(np.concatenate([u, -u])).calculate_areas()
        w, length = crofton_weights(sp)
        np.testing.assert_allclose(w, (area[:13] + area[13:]) / (4 * np.pi), rtol=0, atol=1e-4)
        np.testing.assert_allclose(length, np.linalg.norm(d, axis=1), rtol=1e-15)


# --------------------------------------------------------------------------------------------
# kernels.distance
# --------------------------------------------------------------------------------------------
def test_squared_distance_is_the_square_of_scipys_transform():
    """The squared distances of the thickness map: edt's integers times the voxel edge squared
    for cubic voxels, SciPy's (with the voxel size in z, y, x order) for anisotropic ones."""
    rng = np.random.default_rng(7)
    mask = ndi.binary_opening(rng.random((9, 12, 10)) < 0.7)
    for spacing in [(1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (3.0, 3.0, 3.0), (1.0, 2.0, 3.0), (2.5, 1.0, 1.0)]:
        ref = ndi.distance_transform_edt(mask, sampling=spacing) ** 2
        assert squared_distance(mask, spacing) == pytest.approx(ref, rel=1e-6, abs=1e-9), spacing


# --------------------------------------------------------------------------------------------
# kernels.blend (the window grid split over blocks)
# --------------------------------------------------------------------------------------------
def test_block_patches_give_every_window_to_exactly_one_block():
    """Blocks whose borders fall on window starts: each window belongs to the block holding its
    start (a start on a border to the upper block only), and a block's accumulator ends at its
    last window's end."""
    starts = K.patch_starts((24,), (8,), 0.5)  # 0, 4, 8, 12, 16
    bounds = [0, 4, 8, 13, 16, 24]
    own = [K.block_patches(starts, [a], [b])[0] for a, b in zip(bounds[:-1], bounds[1:])]
    assert starts[0].tolist() == [0, 4, 8, 12, 16]
    assert [o.tolist() for o in own] == [[0], [4], [8, 12], [], [16]]
    ext = [K.extended_stop([o], [b], (8,))[0] for o, b in zip(own, bounds[1:])]
    assert ext == [8, 12, 20, 16, 24]  # the last own window's end, at least the block's


def test_normalise_partial_keeps_the_last_class_a_probability():
    """Windows whose softmax puts all of a voxel on the first classes: their float32 sums over
    the weight sum can exceed 1 by a rounding, and 1 minus them must not go below 0."""
    rng = np.random.default_rng(8)
    shape = (20, 30, 40)
    acc = np.zeros((2,) + shape, np.float32)
    total = np.zeros(shape, np.float32)
    for _ in range(5):  # five overlapping windows, last class 0 in each
        w = rng.uniform(1e-3, 1, shape).astype(np.float32)
        a = rng.uniform(0, 1, shape).astype(np.float32)
        acc[0] += w * a
        acc[1] += w * (np.float32(1) - a)
        total += w
    out = K.normalise_partial(acc, total, 3)
    assert out.dtype == np.float32
    assert out[2].min() >= 0 and out[2].max() <= 1e-6
    np.testing.assert_allclose(out[:2], acc / total, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# measure._metrics
# --------------------------------------------------------------------------------------------
def test_a_phase_index_one_past_the_last_phase_is_refused_by_name():
    lab = da.from_array(np.random.default_rng(9).integers(0, 3, (6, 7, 8)).astype(np.uint8), chunks=(3, 4, 5))
    for fn in (surface_area, specific_surface_area):
        with pytest.raises(InputError, match=r"index below 3\. Got 3"):
            fn(lab, phase=3)
    assert surface_area(lab, phase=2) > 0  # the last phase itself is fine


def test_marching_cubes_on_a_single_slice_is_refused_not_zero():
    """A (1, y, x) slice has no cell between voxel centres: marching cubes would read 0."""
    lab = np.zeros((1, 6, 7), np.uint8)
    lab[0, 2:4, 2:5] = 2
    for fn, kw in ((interfaces, {}), (surface_area, {"phase": 2})):
        with pytest.raises(InputError, match="marching-cubes mesh needs 2"):
            fn(da.from_array(lab, chunks=(1, 3, 4)), method="marching_cubes", **kw)
    assert surface_area(lab, phase=2, method="faces") == 2 * 3 + 2 * 2  # the 2 x 3 rectangle's edges in the slice


# --------------------------------------------------------------------------------------------
# kernels.particles
# --------------------------------------------------------------------------------------------
def _dome_dynamic(d: np.ndarray, a: tuple, b: tuple) -> float:
    """Height of the lower of two peaks ``a``, ``b`` of ``d`` above the highest level at which a
    6-connected path joins them (brute force over the levels)."""
    def joins(t: float) -> bool:
        cc, _ = ndi.label(d >= t, ndi.generate_binary_structure(3, 1))
        return cc[a] != 0 and cc[a] == cc[b]

    levels = np.unique(d[d > 0])  # joined up to the saddle, apart above it: bisect the levels
    lo, hi = 0, len(levels) - 1
    assert joins(levels[lo]) and not joins(levels[hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if joins(levels[mid]) else (lo, mid)
    return min(d[a], d[b]) - levels[lo]


def test_split_height_is_in_edges_of_the_smallest_voxel_edge():
    """Two balls joined by a neck, in voxels twice as long along x: one marker per ball when the
    lower dome rises more than ``h`` smallest voxel edges above the saddle, one for both
    otherwise (a height in the largest edge split fewer particles)."""
    sp, shape = (1.0, 1.0, 2.0), (22, 22, 18)
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    balls = [(z - 10.5) ** 2 + (y - 10.5) ** 2 + (2.0 * x - c) ** 2 <= 36.0 for c in (12.0, 22.0)]
    codes = np.where(balls[0] | balls[1], 2, 0).astype(np.uint8)
    d = ndi.distance_transform_edt(codes == 2, sampling=sp)
    half = np.where(np.arange(shape[2]) < 9, 1.0, 0.0)[None, None, :]
    a = np.unravel_index(np.argmax(d * half), shape)
    b = np.unravel_index(np.argmax(d * (1 - half)), shape)
    dyn = _dome_dynamic(d, a, b)
    assert 1.0 < dyn < 2.0  # the case that tells the smallest edge (1) from the largest (2)
    for h in (0.5, 1.0, 1.5, 2.0, 3.0):
        want = 2 if dyn > h * min(sp) else 1
        assert particle_markers(codes, 2, (0, 0, 0), shape, sp, h).sum() == want, h


def test_a_small_component_is_marked_unless_it_touches_a_side_where_the_volume_goes_on():
    """A component too small for a dome gets its highest voxel as marker, except where it
    touches a side of the block that the volume continues beyond (low and high sides apart)."""
    codes = np.zeros((6, 5, 5), np.uint8)
    codes[0, 2, 2] = 2  # touches the low z side
    codes[5, 1:3, 1] = 2  # touches the high z side
    vol = (6, 5, 5)

    def marked(open_z):
        m = particle_markers(codes, 2, (0, 0, 0), vol, (1.0, 1.0, 1.0), 1.0,
                             (open_z, (False, False), (False, False)))
        return bool(m[0].any()), bool(m[5].any())

    assert marked((False, False)) == (True, True)
    assert marked((True, False)) == (False, True)
    assert marked((False, True)) == (True, False)
    assert marked((True, True)) == (False, False)


def test_label_points_do_not_join_the_end_of_a_row_to_the_start_of_the_next():
    """Components of sparse voxels against scipy.ndimage.label on the dense array, with voxels
    at the ends of rows and planes (whose linear indices are consecutive)."""
    vol = (3, 4, 5)
    dense = np.zeros(vol, bool)
    for p in [(0, 0, 4), (0, 1, 0), (0, 3, 4), (1, 0, 0), (1, 2, 2), (1, 2, 3), (2, 3, 4), (2, 0, 0), (2, 1, 0)]:
        dense[p] = True
    index = np.flatnonzero(dense)
    ref, n = ndi.label(dense, ndi.generate_binary_structure(3, 1))  # raster order of first voxels
    got = label_points(index, vol)
    np.testing.assert_array_equal(got, ref.ravel()[index])
    assert got.max() == n


def test_mutual_matches_need_a_share_of_the_smaller_particle_and_break_ties_by_the_smaller_id():
    # particle 1 (10 voxels) lies in particle 1 of the next step (100 voxels) by 6 voxels: 60 %
    # of the smaller; particle 2 (40 voxels) overlaps particle 2 (50) by 15: 37.5 % of the smaller
    pairs = np.array([[1, 1], [2, 2]])
    counts = np.array([6, 15])
    size_a = np.array([0, 10, 40])
    size_b = np.array([0, 100, 50])
    assert mutual_matches(pairs, counts, size_a, size_b, 0.5) == {1: 1}
    assert mutual_matches(pairs, counts, size_a, size_b, 0.3) == {1: 1, 2: 2}
    assert mutual_matches(pairs, counts, size_a, size_b, 0.7) == {}
    # ties in the overlap: the smaller id, on either side
    tie = np.array([[2, 1], [1, 1]]), np.array([5, 5]), np.array([0, 8, 8]), np.array([0, 9])
    assert mutual_matches(*tie, 0.5) == {1: 1}
    tie = np.array([[1, 2], [1, 1]]), np.array([5, 5]), np.array([0, 9]), np.array([0, 8, 8])
    assert mutual_matches(*tie, 0.5) == {1: 1}


def test_crofton_particle_areas_leave_out_crossings_into_unlabelled_voxels():
    """Per particle, its crossings along the 13 directions' lines (both ways) into voxels of
    another particle or phase, none at the volume border or into unlabelled (255) voxels:
    brute force over the 26 neighbours of every particle voxel, for any chunking."""
    rng = np.random.default_rng(10)
    shape, sp = (12, 14, 15), (1.0, 1.5, 2.0)
    zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    lab = np.where(rng.random(shape) < 0.3, 1, 0).astype(np.uint8)
    for c in [(3, 4, 4), (8, 9, 10), (6, 3, 11)]:
        lab[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= 7] = 2
    lab[:, :, 10:] = np.where(yy[:, :, 0:1] > 8, 255, lab[:, :, 10:])  # a corner outside the field of view
    ids = label(lab == 2, connectivity=1)
    w, length = crofton_weights(sp)
    want = np.zeros(ids.max())
    pad_id = np.pad(ids, 1)
    pad_lab = np.pad(lab, 1, constant_values=255)  # beyond the volume: no crossing, as unlabelled
    for d, wd, ld in zip(DIRECTIONS, w, length):
        for sign in (-1, 1):
            nb = tuple(slice(1 + sign * o, 1 + sign * o + n) for o, n in zip(d, shape))
            cross = (ids > 0) & (pad_id[nb] != ids) & (pad_lab[nb] < 3)
            want += np.bincount(ids[cross] - 1, minlength=len(want)) * 2 * wd * np.prod(sp) / ld
    vol = xr.DataArray(lab, dims=("z", "y", "x"), attrs={"voxel_size": list(sp), "unit": "um"})
    for chunks in (shape, (5, 6, 4)):
        tab = particles(vol.chunk(dict(zip("zyx", chunks))), split=False, area_method="crofton")
        np.testing.assert_allclose(tab.surface_area.to_numpy(), want, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# measure._particles
# --------------------------------------------------------------------------------------------
def test_sphericity_over_the_tolerance_is_lost_just_above_it_too():
    """A ball of radius 4 voxels reads a sphericity of about 1.13 (its smoothed area ~12 % below
    the ball's): over 1.1, so not reported; one of radius 7 (~1.04) is. Against scikit-image's
    mesh of each particle's smoothed indicator."""
    shape = (16, 16, 36)
    zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    lab = np.zeros(shape, np.uint8)
    lab[(zz - 7.6) ** 2 + (yy - 7.3) ** 2 + (xx - 7.2) ** 2 <= 16] = 2
    lab[(zz - 7.4) ** 2 + (yy - 7.7) ** 2 + (xx - 24.3) ** 2 <= 49] = 2
    tab = particles(da.from_array(lab, chunks=(7, 9, 10)), split=False)
    assert len(tab) == 2 and not tab.touches_border.any()
    ids, _ = ndi.label(lab == 2)
    for row, i in zip(tab.itertuples(), (1, 2)):
        f = ndi.uniform_filter((ids == i).astype(np.float64), size=3, mode="nearest")
        verts, faces, _, _ = marching_cubes(f, 0.5)
        ratio = math.pi ** (1 / 3) * (6.0 * row.voxels) ** (2 / 3) / mesh_surface_area(verts, faces)
        if row.voxels < 500:  # the small ball
            assert 1.1 < ratio < 1.2  # the case between the tolerance and a looser one
            assert np.isnan(row.sphericity) and np.isnan(row.surface_area)
        else:
            assert ratio < 1.1
            assert row.sphericity == pytest.approx(ratio, rel=1e-5)


def test_beyond_halo_flags_a_particle_one_voxel_past_the_extended_block():
    """Blocks [0, 10) and [10, 20) along z with a halo of 3: a particle reaching into both is
    seen whole by a block only within [block start - 3, block end + 3)."""
    rows = [(7, 13), (7, 14), (6, 13), (2, 8), (12, 18), (0, 20), (10, 14)]  # (bbox_z0, bbox_z1)
    table = pd.DataFrame({"bbox_z0": [r[0] for r in rows], "bbox_z1": [r[1] for r in rows],
                          "bbox_y0": 0, "bbox_y1": 4, "bbox_x0": 0, "bbox_x1": 4})
    got = _beyond_halo(table, ((10, 10), (4,), (4,)), 3)
    # [7, 13): within block 0's reach (to 13) and block 1's (from 7); [7, 14) one past block 0's,
    # [6, 13) one before block 1's; [2, 8) and [12, 18) lie in one block; [0, 20) is wider;
    # [10, 14) starts on the border: in block 1 only (block 0's reach to 13 is no matter)
    assert got.tolist() == [False, True, True, False, False, True, False]


def test_split_halo_of_a_flat_volume_is_max_diameter_not_its_thinnest_axis():
    """A volume 5 voxels thick: the halo is ``max_diameter`` voxels (capped by the LARGEST axis),
    so touching balls split across y/x block borders as in the whole volume, with no warning."""
    shape = (5, 36, 36)
    zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    lab = np.zeros(shape, np.uint8)
    for c in [(2, 11, 10), (2, 11, 18), (2, 24, 13), (2, 26, 25)]:
        lab[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= 20] = 2
    whole = particles(lab, max_diameter=14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        blocks = particles(da.from_array(lab, chunks=(5, 12, 12)), max_diameter=14)
    assert blocks.attrs["max_diameter"] == 14 and len(whole) >= 4
    cols = ["voxels", "bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1"]
    pd.testing.assert_frame_equal(blocks[cols], whole[cols])


def test_pore_particles_have_no_detachment():
    """Detachment is the pore-contact share of a solid particle: NaN for particles of the pore
    phase itself (they have no contact_pore column), whose other contacts still add up to 1."""
    lab = np.full((8, 9, 10), 2, np.uint8)
    lab[2:5, 2:6, 3:7] = 0  # a pore inside the active material
    lab[2:5, 2:6, 5] = 1  # a cbd wall cuts it into two pores, x in [3, 5) and [6, 7)
    tab = particles(da.from_array(lab, chunks=(4, 5, 6)), phase="pore", split=False)
    assert len(tab) == 2 and "contact_pore" not in tab.columns
    assert tab.detachment.isna().all()
    np.testing.assert_allclose(tab[["contact_cbd", "contact_active", "contact_particle"]].sum(axis=1), 1.0)
    # the left pore [3, 5) in x: faces 3x4 against cbd at x=5, the rest against active
    left = tab.iloc[0]
    faces = 2 * (3 * 4 + 3 * 2 + 4 * 2)
    assert left.contact_cbd == 3 * 4 / faces and left.contact_active == (faces - 3 * 4) / faces


def test_specific_surface_area_of_a_box_in_anisotropic_voxels():
    """A 3 x 4 x 5 box of active in pore, voxels 2 x 3 x 5 nm: faces give its exact area, the
    volumes are voxel counts times 30 nm^3, and the absent cbd has no per-phase value (NaN)."""
    lab = np.zeros((7, 8, 9), np.uint8)
    lab[2:5, 1:5, 3:8] = 2
    vol = make_volume(da.from_array(lab, chunks=(3, 5, 4)), voxel_size=(2.0, 3.0, 5.0), unit="nm",
                      phases=PHASES)
    ds = specific_surface_area(vol, method="faces")
    dz, dy, dx = 3 * 2.0, 4 * 3.0, 5 * 5.0  # the box's edges, nm
    area = 2 * (dy * dx + dz * dx + dz * dy)
    np.testing.assert_allclose(ds.surface_area.sel(phase="active"), area, rtol=1e-12)
    np.testing.assert_allclose(ds.volume.values, [(lab.size - 60) * 30.0, 0.0, 60 * 30.0], rtol=1e-12)
    np.testing.assert_allclose(ds.per_total_volume.sel(phase="active"), area / (lab.size * 30.0), rtol=1e-12)
    np.testing.assert_allclose(ds.per_phase_volume.sel(phase="active"), area / (60 * 30.0), rtol=1e-12)
    assert np.isnan(ds.per_phase_volume.sel(phase="cbd")) and ds.per_total_volume.sel(phase="cbd") == 0
    assert specific_surface_area(vol, phase="active", per="phase") == pytest.approx(area / 1800.0, rel=1e-12)


def test_a_prediction_value_beyond_the_phases_is_refused_by_name():
    truth, pred = _random_pair(12)
    pred[3, 4, 5] = 7
    for fn in (measure.scores, measure.confusion):
        with pytest.raises(InputError, match="pred"):
            fn(_named(truth, PHASES), _named(pred, PHASES))
    with pytest.raises(InputError, match=r"segmentations\[1\]"):
        measure.agreement([_named(truth, PHASES), _named(pred, PHASES)], truth=_named(truth, PHASES))


def test_particle_intensity_extremes_of_negative_grey_values():
    """Grey values below 0 everywhere (e.g. a difference image): the min, max and mean of each
    particle's values as scikit-image's regionprops gives them, for any chunking."""
    rng = np.random.default_rng(13)
    lab = np.where(rng.random((8, 9, 10)) < 0.35, 2, 0).astype(np.uint8)
    grey = rng.uniform(-5.0, -1.0, lab.shape)
    ids = label(lab == 2, connectivity=1)
    props = regionprops(ids, intensity_image=grey)
    for chunks in (lab.shape, (3, 4, 5)):
        tab = particles(da.from_array(lab, chunks=chunks), intensity=da.from_array(grey, chunks=chunks), split=False)
        assert len(tab) == len(props)
        np.testing.assert_allclose(tab.max_intensity, [p.intensity_max for p in props], rtol=1e-12)
        np.testing.assert_allclose(tab.min_intensity, [p.intensity_min for p in props], rtol=1e-12)
        np.testing.assert_allclose(tab.mean_intensity, [p.intensity_mean for p in props], rtol=1e-12)
    assert (tab.max_intensity < 0).all() and tab.max_intensity.max() == pytest.approx(grey[lab == 2].max())


def test_particle_size_columns_of_a_box_in_anisotropic_voxels():
    """A 3 x 4 x 5 box, voxels 2 x 3 x 5 nm: volume 60 x 30 nm^3, the equivalent diameter of that
    volume (not of the voxel count), centroid at the mean voxel index times the voxel size."""
    lab = np.zeros((7, 8, 9), np.uint8)
    lab[2:5, 1:5, 3:8] = 2
    vol = make_volume(da.from_array(lab, chunks=(3, 5, 4)), voxel_size=(2.0, 3.0, 5.0), unit="nm",
                      phases=PHASES)
    row = particles(vol, split=False).iloc[0]
    assert row.voxels == 60 and row.volume == pytest.approx(1800.0, rel=1e-12)
    assert row.equivalent_diameter == pytest.approx((6 * 1800.0 / math.pi) ** (1 / 3), rel=1e-12)
    assert (row.centroid_z, row.centroid_y, row.centroid_x) == pytest.approx((3 * 2.0, 2.5 * 3.0, 5 * 5.0))
