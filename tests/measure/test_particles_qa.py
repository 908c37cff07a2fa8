"""Per-particle table, checked as a battery scientist would: against scikit-image on the whole
volume with awkward chunking, a cropped volume's frame, anisotropic voxels, unlabelled (255)
voxels, NaN/inf grey values, absent and volume-filling phases, column units and the CLI."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage as ndi
from skimage.measure import label, regionprops

from bigseg.measure import particles, read_table

from ._measure_ref import particle_face_areas

PHASES = ["pore", "cbd", "active"]


def _blobs(shape, seed):
    """Labels 0/1/2 from smoothed noise: irregular particles crossing block borders and corners."""
    f = ndi.gaussian_filter(np.random.default_rng(seed).random(shape), 1.2)
    lab = np.zeros(shape, np.uint8)
    lab[f > 0.52] = 2
    lab[(f > 0.48) & (f <= 0.5)] = 1
    return lab


def test_components_of_a_cropped_anisotropic_volume_with_unlabelled_voxels_match_scikit_image():
    """split=False on chunks (7, 9, 11), voxels 2 × 1 × 0.5 µm, a box cut from a scan at voxel
    (10, 5, 3), unlabelled slabs: counts, physical volumes, diameters and centroids in the scan's
    frame, bboxes, grey statistics, contacts (255 faces left out) and the border flag."""
    shape, vs, at = (21, 27, 33), (2.0, 1.0, 0.5), (10, 5, 3)
    lab = _blobs(shape, 1)
    lab[:, :, 30:] = 255  # outside the field of view
    lab[10, 12, 5:9] = 255
    img = np.random.default_rng(2).normal(1.0, 0.3, shape).astype(np.float32)
    coords = {d: (o + np.arange(n)) * v for d, o, n, v in zip("zyx", at, shape, vs)}
    vol = xr.DataArray(da.from_array(lab, chunks=(7, 9, 11)), dims=("z", "y", "x"), coords=coords,
                       attrs={"voxel_size": vs, "unit": "um", "phases": PHASES})
    tab = particles(vol, split=False, intensity=da.from_array(img, chunks=(9, 11, 7)))
    ref = label(lab == 2, connectivity=1)
    props = regionprops(ref, intensity_image=img, spacing=vs)
    assert len(tab) == len(props) > 10
    np.testing.assert_array_equal(tab.voxels, [p.num_pixels for p in props])
    np.testing.assert_allclose(tab.volume, [p.area for p in props])  # µm³
    np.testing.assert_allclose(tab.equivalent_diameter, [p.equivalent_diameter_area for p in props])
    np.testing.assert_allclose(tab[["centroid_z", "centroid_y", "centroid_x"]].to_numpy(),
                               np.array([p.centroid for p in props]) + np.multiply(at, vs))
    np.testing.assert_array_equal(tab[["bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1"]],
                                  [p.bbox for p in props])
    for col, key in (("mean_intensity", "intensity_mean"), ("min_intensity", "intensity_min"),
                     ("max_intensity", "intensity_max")):
        np.testing.assert_allclose(tab[col], [getattr(p, key) for p in props], rtol=1e-6)
    faces = particle_face_areas(lab, ref, 3, vs)
    inside = faces[:, :3].sum(1)
    for j, col in enumerate(("contact_pore", "contact_cbd", "contact_particle")):
        np.testing.assert_allclose(tab[col], faces[:, j] / inside)
    at_edge = np.array([min(p.bbox[:3]) == 0 or any(b == n for b, n in zip(p.bbox[3:], shape)) for p in props])
    assert (~at_edge & (faces[:, 3] > 0)).any()  # some particle touches 255 only
    np.testing.assert_array_equal(tab.touches_border, at_edge | (faces[:, 3] > 0))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_grey_value_is_left_out_and_said(bad):
    """A NaN read 0 into its block's partial sum (pandas skips NaN when adding the blocks up):
    the particle's mean came out silently wrong (0.49 for grey 1), 0 with one block. Now the
    non-finite voxels are left out of mean/min/max, counted and warned about, for any chunking."""
    lab = np.zeros((14, 15, 16), np.uint8)
    lab[3:8, 3:8, 3:8] = 2  # crosses the block corner at (7, 7, 7)
    lab[9:12, 9:13, 9:13] = 2
    img = np.random.default_rng(0).normal(1.0, 0.2, lab.shape)
    img[5, 5, 5] = bad
    img[10, 10, 10] = bad
    img[10, 11, 10] = bad
    ref = regionprops(label(lab == 2, connectivity=1), intensity_image=np.where(np.isfinite(img), img, np.nan))
    for chunks in ((7, 7, 7), lab.shape):
        with pytest.warns(UserWarning, match="3 grey value.*NaN or inf"):
            tab = particles(da.from_array(lab, chunks=chunks), intensity=img, split=False)
        assert tab.attrs["nonfinite_intensity_voxels"] == 3
        np.testing.assert_allclose(tab.mean_intensity, [np.nanmean(p.image_intensity[p.image]) for p in ref])
        np.testing.assert_allclose(tab.min_intensity, [np.nanmin(p.image_intensity[p.image]) for p in ref])
        np.testing.assert_allclose(tab.max_intensity, [np.nanmax(p.image_intensity[p.image]) for p in ref])
    none = np.where(lab == 2, np.nan, 1.0)  # no finite grey value in any particle: NaN, not 0
    with pytest.warns(UserWarning, match="NaN or inf"):
        tab = particles(lab, intensity=none, split=False)
    assert tab[["mean_intensity", "min_intensity", "max_intensity"]].isna().all().all()
    outside = np.where(lab == 2, 1.0, np.nan)  # NaN outside the particles: nothing to say
    tab = particles(lab, intensity=outside, split=False)
    np.testing.assert_array_equal(tab.mean_intensity, 1.0)
    assert tab.attrs["nonfinite_intensity_voxels"] == 0


@pytest.mark.parametrize("split", [False, True])
def test_absent_phase_gives_an_empty_table_with_every_column(split):
    lab = _blobs((12, 13, 14), 3)
    lab[lab == 2] = 0
    full = particles(_blobs((12, 13, 14), 3), split=split, max_diameter=8, intensity=np.ones(lab.shape))
    tab = particles(da.from_array(lab, chunks=(5, 6, 7)), split=split, max_diameter=8, intensity=np.ones(lab.shape))
    assert len(tab) == 0 and len(full) > 0
    assert list(tab.columns) == list(full.columns) and (tab.dtypes == full.dtypes).all()
    assert set(tab.attrs["units"]) == set(tab.columns)


def test_column_units_in_attrs():
    lab = _blobs((12, 13, 14), 4)
    vol = xr.DataArray(lab, dims=("z", "y", "x"), attrs={"voxel_size": (0.5, 0.5, 0.5), "unit": "um"})
    img = xr.DataArray(np.ones(lab.shape), dims=("z", "y", "x"), attrs={"units": "cm^-1"})
    tab = particles(vol, split=False, intensity=img)
    u = tab.attrs["units"]
    assert list(u) == list(tab.columns)
    assert (u["volume"], u["equivalent_diameter"], u["surface_area"], u["centroid_x"]) == ("um^3", "um", "um^2", "um")
    assert u["bbox_z0"] == u["voxels"] == "voxel" and u["contact_pore"] == u["sphericity"] == "1"
    assert u["mean_intensity"] == u["max_intensity"] == "cm^-1"
    ser = xr.DataArray(np.stack([lab, lab]), dims=("t", "z", "y", "x"),
                       coords={"t": xr.DataArray([0.0, 5.0], dims="t", attrs={"units": "min"})})
    assert particles(ser, split=False).attrs["units"]["t"] == "min"


def test_cli_takes_a_label_value_as_particle_phase(tmp_path, capsys):
    """`--particle-phase 1` passed the CLI's own check as a label value, then measure refused the
    string '1' after every other measurement had run. Now: the phase of that value, by name; a
    value beyond the phases is refused before any work."""
    from bigseg.cli import main

    lab = _blobs((12, 13, 14), 5)
    seg = tmp_path / "seg.npy"
    np.save(seg, lab)
    csv = tmp_path / "p.csv"
    assert main(["measure", str(seg), "--particles", str(csv), "--particle-phase", "1", "--no-split",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert " cbd particles" in out
    pd.testing.assert_frame_equal(read_table(csv), particles(lab, phase="cbd", split=False), check_dtype=False,
                                  check_exact=False, rtol=1e-12)
    assert main(["measure", str(seg), "--particles", str(tmp_path / "q.csv"), "--particle-phase", "3"]) == 2
    err = capsys.readouterr().err
    assert "`--particle-phase`" in err and "below 3" in err and "measuring:" not in err
    assert not (tmp_path / "q.csv").exists()


def test_tracks_of_standing_appearing_and_reappearing_particles():
    """An empty first scan; balls that stand still keep their track at every step, for any
    chunking and with the split; one that vanishes and comes back at the same place starts a new
    track (overlap tracking links consecutive scans only); grey statistics per step."""
    shape = (20, 26, 40)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]

    def balls(*centres):
        lab = np.zeros(shape, np.uint8)
        for c in centres:
            lab[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= 16] = 2
        return lab

    a, b, c = (10, 8, 8), (10, 17, 20), (10, 10, 32)
    ser = np.stack([balls(), balls(a, b), balls(a, b, c), balls(b, c), balls(a, b, c)])
    img = np.broadcast_to(np.arange(5.0)[:, None, None, None], ser.shape)
    steps = [0.0, 5.0, 10.0, 15.0, 20.0]
    tables = [particles(xr.DataArray(da.from_array(ser, chunks=ch), dims=("t", "z", "y", "x"), coords={"t": steps}),
                        split=split, max_diameter=12, intensity=img)
              for ch in ((1, 7, 9, 11), (2, 20, 26, 40)) for split in (False, True)]
    for tab in tables[1:]:
        pd.testing.assert_frame_equal(tab, tables[0])
    tab = tables[0]
    assert tab.attrs["t"] == steps and 0.0 not in set(tab.t)
    track = {(t, round(cx)): k for t, cx, k in zip(tab.t, tab.centroid_x, tab.track)}
    assert {track[t, 20] for t in steps[1:]} == {track[5.0, 20]}  # b: one track throughout
    assert track[10.0, 32] == track[15.0, 32] == track[20.0, 32]  # c from its appearance on
    assert track[5.0, 8] == track[10.0, 8] and track[20.0, 8] not in set(tab.track[tab.t < 20])  # a came back
    np.testing.assert_array_equal(tab.mean_intensity, tab.t / 5.0)


def test_unlabelled_voxels_cut_particles_as_the_volume_border_does():
    """The split read unlabelled (255) voxels as another phase (distance 0 there) but the volume
    border as more of the particle: the same electrode split 52 particles cropped at z = 22 and
    47 with z >= 22 unlabelled. Now 255 is a border for the split too: the same table (the
    crop keeps every voxel's global index, so the tie-break is the same), for any chunking."""
    import bigseg

    lab = bigseg.synth.electrode((30, 32, 40), radius=(4, 1), seed=3).values
    fov = lab.copy()
    fov[22:] = 255
    crop = particles(lab[:22], max_diameter=30)
    cut = particles(da.from_array(fov, chunks=(7, 9, 11)), max_diameter=30)
    cols = [c for c in crop.columns if c not in ("surface_area", "sphericity")]
    assert len(crop) > 40 and crop.touches_border.sum() > 10
    pd.testing.assert_frame_equal(cut[cols], crop[cols])


def test_grey_values_of_another_grid_are_warned_about():
    """`intensity` of the labels' shape but another voxel size (0.1 µm for 50 nm labels), or a
    box cut from another place of the scan: every particle's grey values came from the wrong
    voxels without a word. Warned, as scores warns for two label volumes."""
    import warnings

    import bigseg
    from bigseg import measure, synth

    lab = synth.electrode((24, 32, 32), seed=2, voxel_size=50, unit="nm")
    img = synth.xct(lab, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measure.particles(lab, intensity=img)  # the same grid: no word
        measure.particles(lab, intensity=bigseg.io.recalibrated(img, 0.05, "um"))  # 50 nm said otherwise
    with pytest.warns(UserWarning, match=r"`labels` and `intensity` .* different voxel sizes .*\(0.1, 0.1, 0.1\) um"):
        measure.particles(lab, intensity=bigseg.io.recalibrated(img, 0.1, "um"))
    with pytest.warns(UserWarning, match=r"`labels` and `intensity` .* different places .* 12, 0, 0 voxels"):
        measure.particles(lab.isel(z=slice(0, 12)), intensity=img.isel(z=slice(12, 24)))


def test_smoothed_areas_end_at_unlabelled_voxels_as_at_the_volume_border():
    """The marching-cubes area of a particle cut by unlabelled (255) voxels (a field of view's
    edge) closed its surface along that edge, where the phases' areas (``surface_area``,
    ``interfaces``) and the docstring leave it open: a ball of radius 12 cut by an unlabelled
    slab read 1577 for the 940 of the same ball cropped there (+68 %, on 1.5 × 1 × 0.5 voxels).
    Now the same as the crop, which is scikit-image's mesh of the cropped indicator, for any
    chunking; on an electrode, touching particles included."""
    import bigseg
    from skimage.measure import marching_cubes, mesh_surface_area

    from bigseg.measure import surface_area

    zz, yy, xx = np.indices((30, 30, 30))
    ball = np.where((zz - 14.5) ** 2 + (yy - 14.5) ** 2 + (xx - 14.5) ** 2 < 144, 2, 0).astype(np.uint8)
    cut = ball.copy()
    cut[:, :, 17:] = 255
    vs = (1.5, 1.0, 0.5)
    ind = ndi.uniform_filter((ball[:, :, :17] == 2).astype(np.float64), 3, mode="nearest")
    want = mesh_surface_area(*marching_cubes(ind, 0.5, spacing=vs)[:2])
    got = particles(xr.DataArray(da.from_array(cut, chunks=(7, 11, 13)), dims=("z", "y", "x"),
                                 attrs={"voxel_size": list(vs)}), split=False)
    assert got.surface_area.item() == pytest.approx(want, rel=1e-6)  # was 1.68 x
    assert got.surface_area.item() == pytest.approx(
        surface_area(xr.DataArray(cut, dims=("z", "y", "x"), attrs={"voxel_size": list(vs)}), phase="active",
                     method="marching_cubes"), rel=1e-9)
    # an electrode with its far end unlabelled: the table of the crop, areas and sphericities too
    lab = bigseg.synth.electrode((30, 32, 40), radius=(4, 1), seed=3).values
    fov = lab.copy()
    fov[22:] = 255
    crop = particles(lab[:22], max_diameter=30)
    for chunks in ((7, 9, 11), (30, 32, 40)):
        tab = particles(da.from_array(fov, chunks=chunks), max_diameter=30)
        pd.testing.assert_frame_equal(tab[["surface_area", "sphericity"]], crop[["surface_area", "sphericity"]],
                                      rtol=1e-9)



def test_smoothed_area_of_one_particle_next_to_scattered_unlabelled_voxels_is_its_phase_s():
    """A lone particle's smoothed area is its phase's (both filled alike at unlabelled voxels),
    for any chunking: scattered 255 voxels meet the blocks' halos (the fill of a voxel two past
    a block reads a third) and the volume's border (beyond it nothing is labelled, so a border
    voxel with no labelled face neighbour takes its particle across an edge)."""
    from bigseg.measure import surface_area

    zz, yy, xx = np.indices((12, 13, 9))
    lab = np.where((zz - 5.5) ** 2 + (yy - 6) ** 2 + (xx + 1) ** 2 < 30, 2, 0).astype(np.uint8)  # on the x = 0 face
    ball = lab.copy()
    lab[np.random.default_rng(1).random(lab.shape) < 0.1] = 255
    lab[2:7, 1:6, :3] = ball[2:7, 1:6, :3]
    lab[3:6, 3, 0] = lab[4, 2:5, 0] = lab[4, 3, 1] = 255  # (4, 3, 0): on the border, labelled only across edges
    vs = (1.0, 0.7, 1.3)
    want = surface_area(xr.DataArray(lab, dims=("z", "y", "x"), attrs={"voxel_size": list(vs)}), phase="active",
                        method="marching_cubes")
    for chunks in ((5, 6, 4), (3, 4, 3), lab.shape):
        tab = particles(xr.DataArray(da.from_array(lab, chunks=chunks), dims=("z", "y", "x"),
                                     attrs={"voxel_size": list(vs)}), split=False)
        assert len(tab) == 1
        assert tab.surface_area.item() == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("bad", [3, 7, -1, 300])
def test_particle_labels_refuse_values_beyond_the_phases_as_particles_does(split, bad):
    """particles() refused labels beyond the phases (or outside 0..255); particle_labels() numbered
    the particles of such a volume without a word (-1 and 300 read as other values)."""
    from bigseg.errors import InputError
    from bigseg.measure import particle_labels

    lab = _blobs((9, 10, 11), 4).astype(np.int64)
    lab[4, 5, 6] = bad
    arr = da.from_array(lab, chunks=(4, 5, 6))
    for fn in (particles, particle_labels):
        with pytest.raises(InputError, match=r"to hold values 0..2 or 255"):
            fn(arr, split=split, max_diameter=4)
    lab[4, 5, 6] = 255  # unlabelled: fine
    ids = particle_labels(da.from_array(lab, chunks=(4, 5, 6)), split=split, max_diameter=4).compute()
    assert ids.max() > 0 and not ids[lab != 2].any()
