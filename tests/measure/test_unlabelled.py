"""Labels with unlabelled (255) voxels, e.g. outside a reconstruction's circular field of view:
every measurement leaves them out of the sample, blockwise == a whole-array reference."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from bigseg.errors import InputError
from bigseg.io import inscribed_box
from bigseg.kernels.metrics import fill_unlabelled
from bigseg.measure import (agreement, confusion, interface_profile, interfaces, particles, rve, scores, shells,
                            specific_surface_area, summary, surface_area, tortuosity, volume_fractions)

from ._measure_ref import make_labels

K = 3
CHUNKS = (13, 17, 23)


def _cylinder(shape, radius=None):
    """True inside the circle inscribed in the (y, x) cross-section, for every z."""
    ny, nx = shape[1:]
    r = min(ny, nx) / 2 if radius is None else radius
    yy, xx = np.ogrid[:ny, :nx]
    inside = (yy - (ny - 1) / 2) ** 2 + (xx - (nx - 1) / 2) ** 2 <= r * r
    return np.broadcast_to(inside, shape)


@pytest.fixture(scope="module")
def masked():
    lab = make_labels()
    return np.where(_cylinder(lab.shape), lab, 255).astype(np.uint8)


def _faces_ref(lab):
    """Faces per phase pair between labelled voxels only (symmetric, summed over the axes)."""
    out = np.zeros((K, K), np.int64)
    for ax in range(3):
        a = np.moveaxis(lab, ax, 0)
        lo, hi = a[:-1].ravel(), a[1:].ravel()
        m = (lo != hi) & (lo < K) & (hi < K)
        np.add.at(out, (lo[m], hi[m]), 1)
    return out + out.T


def _onvox_ref(lab):
    onv = np.zeros((K, K), np.int64)
    for b in range(K):
        near = ndi.binary_dilation(lab == b, ndi.generate_binary_structure(3, 1))
        for a in range(K):
            if a != b:
                onv[a, b] = np.count_nonzero((lab == a) & near)
    return onv


def test_faces_leave_the_field_of_view_out(masked):
    ds = interfaces(da.from_array(masked, chunks=CHUNKS))
    n = np.count_nonzero(masked < K)
    np.testing.assert_array_equal(ds.faces.values, _faces_ref(masked))
    np.testing.assert_allclose(ds.voxel_fraction.values, (_onvox_ref(masked) + _onvox_ref(masked).T) / n, rtol=1e-12)
    assert ds.attrs["voxels"] == n
    ssa = specific_surface_area(da.from_array(masked, chunks=CHUNKS))
    np.testing.assert_allclose(ssa.surface_area.values, _faces_ref(masked).sum(axis=1))
    np.testing.assert_allclose(ssa.per_total_volume.values, _faces_ref(masked).sum(axis=1) / n, rtol=1e-12)
    frac = volume_fractions(da.from_array(masked, chunks=CHUNKS))
    np.testing.assert_allclose(frac.values, np.bincount(masked[masked < K], minlength=K) / n, rtol=1e-12)


def _filled_ref(lab):
    """Each unlabelled voxel with a labelled neighbour: the most frequent phase across its faces,
    else its edges, else its corners (ties: the lowest), one voxel at a time."""
    out = lab.copy()
    pad = np.pad(lab, 1, constant_values=255)
    for z, y, x in np.argwhere(lab == 255):
        for k in (1, 2, 3):
            votes = np.zeros(K, int)
            for o in itertools.product((-1, 0, 1), repeat=3):
                if sum(map(abs, o)) == k:
                    v = pad[z + 1 + o[0], y + 1 + o[1], x + 1 + o[2]]
                    if v < K:
                        votes[v] += 1
            if votes.any():
                out[z, y, x] = votes.argmax()
                break
    return out


def _mc_ref(lab, fields, spacing=(1.0, 1.0, 1.0)):
    """scikit-image's mesh of each field's smoothed indicator (unlabelled voxels filled as above,
    the volume's border replicated), counting the triangles of cells whose 8 corners are labelled."""
    from skimage.measure import marching_cubes, mesh_surface_area

    filled, inside = _filled_ref(lab), lab != 255
    cell_ok = np.ones(tuple(n - 1 for n in lab.shape), bool)
    for o in itertools.product((0, 1), repeat=3):
        cell_ok &= inside[o[0]:o[0] + lab.shape[0] - 1, o[1]:o[1] + lab.shape[1] - 1, o[2]:o[2] + lab.shape[2] - 1]
    out = []
    for f in fields:
        smooth = ndi.uniform_filter(np.isin(filled, f).astype(np.float64), size=3, mode="nearest")
        if smooth.min() >= 0.5 or smooth.max() < 0.5:
            out.append(0.0)
            continue
        verts, faces, _, _ = marching_cubes(smooth, 0.5 - 1e-9)
        cells = np.floor(verts[faces].mean(axis=1)).astype(int)
        keep = cell_ok[tuple(np.clip(cells, 0, np.asarray(cell_ok.shape) - 1).T)]
        out.append(mesh_surface_area(verts * np.asarray(spacing), faces[keep]))
    return dict(zip(fields, out))


def test_marching_cubes_pairs_and_phase_areas_without_the_edge(masked):
    """Next to unlabelled voxels the smoothing fills them from the labelled side and only cells
    between labelled voxels count, as at the volume's border (it read them as none of the phases:
    pair areas came out low near the edge); against scikit-image, for any chunking."""
    np.testing.assert_array_equal(fill_unlabelled(masked), _filled_ref(masked))
    fields = [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2)]
    a = _mc_ref(masked, fields)
    for chunks in (CHUNKS, (7, 11, 9)):
        ds = interfaces(da.from_array(masked, chunks=chunks), method="marching_cubes")
        for i, j in itertools.combinations(range(K), 2):
            assert ds.area.values[i, j] == pytest.approx(0.5 * (a[(i,)] + a[(j,)] - a[(i, j)]), rel=1e-6)
    # a phase's area is its pairs' (the cylinder wall is no surface of it)
    np.testing.assert_allclose(ds.phase_area.values, ds.area.values.sum(axis=1), rtol=1e-12)
    for p in range(K):
        area = surface_area(da.from_array(masked, chunks=CHUNKS), phase=p, method="marching_cubes")
        assert area == pytest.approx(ds.phase_area.values[p], rel=1e-9)


def test_an_unlabelled_slice_measures_as_the_volume_without_it():
    lab = make_labels()
    cut = lab.copy()
    cut[:, :, 0] = 255
    vs = {"voxel_size": [2.0, 1.0, 1.5], "unit": "um"}
    import xarray as xr

    def areas(a):
        return interfaces(xr.DataArray(da.from_array(a, chunks=(7, 11, 13)), dims=("z", "y", "x"), attrs=vs),
                          method="marching_cubes").area.values

    np.testing.assert_allclose(areas(cut), areas(np.ascontiguousarray(lab[:, :, 1:])), rtol=1e-12)


def test_one_phase_in_a_cylinder_has_no_surface():
    lab = np.where(_cylinder((20, 30, 30)), 2, 255).astype(np.uint8)
    x = da.from_array(lab, chunks=(7, 11, 9))
    for method in ("faces", "marching_cubes"):
        assert surface_area(x, phase=2, method=method) == 0.0
        assert float(interfaces(x, method=method).area.sum()) == 0.0


def test_interface_profile_per_labelled_volume(masked):
    prof = interface_profile(da.from_array(masked, chunks=CHUNKS), axis="y", step=4)
    ny = masked.shape[1]

    def between(y):  # faces between slices y and y + 1
        return _faces_ref(masked[:, y:y + 2]) - _faces_ref(masked[:, y:y + 1]) - _faces_ref(masked[:, y + 1:y + 2])

    for b, y0 in enumerate(range(0, ny, 4)):
        # the faces inside the bin and half of those with the slices either side of it (at an
        # end of the volume, half of those of the end slice's one neighbour again)
        y1 = min(y0 + 4, ny)
        want = _faces_ref(masked[:, y0:y1]) + (between(y0 - 1 if y0 > 0 else 0)
                                               + between(y1 - 1 if y1 < ny else ny - 2)) / 2
        n = np.count_nonzero(masked[:, y0:y1] < K)
        np.testing.assert_allclose(prof.values[..., b], want / n, rtol=1e-12, err_msg=f"bin {b}")
    empty = np.full((6, 8, 8), 255, np.uint8)
    empty[:3] = 1
    empty[1, 2:5, 2:5] = 0
    p = interface_profile(empty, axis="z")
    assert np.isnan(p.values[..., 4]).all() and p.values[0, 1, 1] > 0


def test_summary_matches_the_single_measurements(masked):
    x = da.from_array(masked, chunks=CHUNKS)
    truth = make_labels()  # the unmasked phantom: outside the field of view the prediction says nothing
    s = summary(x, truth=truth, profile="z", profile_step=8)
    np.testing.assert_array_equal(s.faces.values, _faces_ref(masked))
    np.testing.assert_allclose(s.volume_fraction.values, volume_fractions(x).values)
    np.testing.assert_allclose(s.specific_area_profile.values, interface_profile(x, axis="z", step=8).values)
    np.testing.assert_allclose(s.iou.values, scores(truth, x).iou.values)


def test_unlabelled_predictions_are_misses():
    truth = make_labels((12, 14, 16), seed=3)
    pred = truth.copy()
    pred[:, :, :4] = 255
    cm = confusion(truth, da.from_array(pred, chunks=(5, 6, 7)))
    lost = np.bincount(truth[:, :, :4].ravel(), minlength=K)
    np.testing.assert_array_equal(np.diag(cm.values), np.bincount(truth[:, :, 4:].ravel(), minlength=K))
    assert cm.attrs["unlabelled_predictions"] == lost.sum()
    sc = scores(truth, pred)
    kept = np.bincount(truth[:, :, 4:].ravel(), minlength=K)
    np.testing.assert_allclose(sc.recall.values, kept / (kept + lost))
    np.testing.assert_allclose(sc.iou.values, kept / (kept + lost))
    np.testing.assert_allclose(sc.precision.values, 1.0)
    np.testing.assert_array_equal(sc.support.values, kept + lost)
    assert sc.accuracy.item() == pytest.approx(kept.sum() / truth.size)
    # voxels unlabelled in both are ignored
    t2 = truth.copy()
    t2[:, :, :4] = 255
    assert scores(t2, pred).accuracy.item() == 1.0


def test_shells_count_no_unlabelled_voxel(masked):
    out = shells(da.from_array(masked, chunks=CHUNKS), around="active", of="cbd", max_distance=4, step=1)
    d = ndi.distance_transform_edt(masked != 2)
    for i in range(4):
        m = (d > i) & (d <= i + 1) & (masked < K)
        assert out.voxels.values[i] == m.sum()
        assert out.values[i] == pytest.approx(np.mean(masked[m] == 1), rel=1e-12)


def test_particles_cut_by_the_field_of_view_are_flagged():
    lab = np.zeros((20, 30, 30), np.uint8)
    zz, yy, xx = np.ogrid[:20, :30, :30]
    lab[(zz - 10) ** 2 + (yy - 15) ** 2 + (xx - 13) ** 2 <= 36] = 2  # in the middle (radius 6: a measurable surface)
    lab[(zz - 10) ** 2 + (yy - 15) ** 2 + (xx - 24) ** 2 <= 9] = 2  # on the edge of the circle
    lab = np.where(_cylinder(lab.shape, radius=12), lab, 255).astype(np.uint8)
    tab = particles(da.from_array(lab, chunks=(7, 11, 13)), phase="active", split=False)
    tab = tab.sort_values("centroid_x").reset_index(drop=True)
    assert len(tab) == 2
    assert list(tab.touches_border) == [False, True]
    assert np.isnan(tab.sphericity[1]) and not np.isnan(tab.sphericity[0])
    # the contact fractions count only faces against the sample
    assert tab.contact_pore[1] == pytest.approx(1.0) and tab.detachment[0] == pytest.approx(1.0)


def test_rve_leaves_out_cubes_beyond_the_edge(masked):
    out = rve(da.from_array(masked, chunks=CHUNKS), sizes=[4, 8, 16])
    for size in (4, 8, 16):
        g = tuple(n // size for n in masked.shape)
        cubes = masked[: g[0] * size, : g[1] * size, : g[2] * size].reshape(
            g[0], size, g[1], size, g[2], size).transpose(0, 2, 4, 1, 3, 5).reshape(-1, size ** 3)
        full = cubes[(cubes < K).all(axis=1)]
        frac = np.stack([(full == p).mean(axis=1) for p in range(K)], axis=1)
        assert out.cubes.sel(size=size).item() == len(full)
        if len(full):
            np.testing.assert_allclose(out["mean"].sel(size=size).values, frac.mean(axis=0), rtol=1e-12)
        else:
            assert np.isnan(out["mean"].sel(size=size).values).all()
    assert 0 < out.cubes.sel(size=8).item() < (40 // 8) * (48 // 8) * (56 // 8)


def test_tortuosity_in_the_largest_box_inside_the_field_of_view(masked):
    with pytest.raises(InputError, match=r"without unlabelled \(255\).*pass a field of view \(`fov` 'auto' finds"):
        tortuosity(masked, phase="pore", axis="z")
    out = tortuosity(da.from_array(masked, chunks=CHUNKS), phase="pore", axis="z", fov="auto", subvolume=(40, 24, 48))
    ys, xs = inscribed_box(masked[0] < K)
    assert out.attrs["box_yx"] == [[ys.start, ys.stop], [xs.start, xs.stop]] and (masked[:, ys, xs] < K).all()
    assert ys.stop - ys.start >= 31  # the largest square in a circle of diameter 48: 48 / sqrt(2)
    ref = tortuosity(masked[:, ys, xs], phase="pore", axis="z", subvolume=(40, 24, 48))
    np.testing.assert_allclose(out.tau.values, ref.tau.values)
    np.testing.assert_array_equal(out.y0.values, ref.y0.values + ys.start)  # bounds in the indices of labels


def test_only_unlabelled_voxels_are_refused():
    lab = np.full((4, 5, 6), 255, np.uint8)
    for fn in (volume_fractions, interfaces, specific_surface_area):
        with pytest.raises(InputError, match=r"`labels` to hold labelled voxels"):
            fn(lab)
    for method in ("faces", "crofton", "marching_cubes"):  # surface_area said 0.0
        with pytest.raises(InputError, match=r"`labels` to hold labelled voxels"):
            surface_area(lab, phase="pore", method=method)
    series = np.stack([np.zeros_like(lab), lab])  # a series: the frame named
    with pytest.raises(InputError, match=r"labelled voxels at t=1"):
        surface_area(series, phase="pore")


def test_agreement_over_the_voxels_both_label(masked):
    other = np.where(np.roll(masked, 1, 0) < K, np.roll(masked, 1, 0), 255).astype(np.uint8)
    other[masked == 255] = 255
    other[:3] = 255  # unlabelled only in the second
    segs = [masked, other, np.where(masked < K, (masked + 1) % K, 255).astype(np.uint8)]
    ds = agreement([da.from_array(s, chunks=CHUNKS) for s in segs])
    fr = np.array([np.bincount(s[s < K], minlength=K) / np.count_nonzero(s < K) for s in segs])
    np.testing.assert_allclose(ds.volume_fraction.values, fr, rtol=1e-12)
    want = []
    for a, b in itertools.combinations(segs, 2):
        both = (a < K) & (b < K)
        want.append(np.count_nonzero((a != b) & both) / np.count_nonzero(both))
    np.testing.assert_allclose(ds.differing_fraction.values, want, rtol=1e-12)
    assert ds.differing_fraction.values[1] == pytest.approx(1.0)  # every labelled voxel shifted by one phase


def test_agreement_with_a_truth_scores_every_segmentation_in_one_pass(masked):
    truth = make_labels()
    segs = [masked, np.roll(truth, 1, 0), truth[:, :, ::-1].copy()]
    ds = agreement([da.from_array(s, chunks=CHUNKS) for s in segs], truth=da.from_array(truth, chunks=CHUNKS))
    for i, s in enumerate(segs):
        ref = scores(truth, s)
        np.testing.assert_allclose(ds.iou.values[i], ref.iou.values, rtol=1e-12)
        assert ds.accuracy.values[i] == pytest.approx(ref.accuracy.item())
    series = agreement([np.stack([s, s]) for s in segs], truth=np.stack([truth, truth]))
    assert series.iou.dims == ("t", "segmentation", "phase")
    np.testing.assert_allclose(series.iou.values[1], ds.iou.values, rtol=1e-12)
