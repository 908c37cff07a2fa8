"""Per-particle table: whole-volume scikit-image / NumPy references, chunking invariance, splitting."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from skimage.measure import label, regionprops

import bigseg
from bigseg.errors import InputError, OutputExistsError
from bigseg.kernels.metrics import mc_field_areas
from bigseg.kernels.particles import label_points
from bigseg.measure import particle_labels, particles

from ._measure_ref import particle_face_areas


def _balls(shape, centres, radius, value=2, base=None):
    lab = np.zeros(shape, np.uint8) if base is None else base.copy()
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    for c in centres:
        lab[(z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= radius ** 2] = value
    return lab


@pytest.fixture(scope="module")
def electrode():
    lab = bigseg.synth.electrode((30, 36, 40), radius=(3, 1), seed=5).values
    img = bigseg.synth.xct(lab, seed=1, preset="nano-ct-absorption").values
    return lab, img


def test_connected_components_match_scikit_image(electrode):
    lab, img = electrode
    vol = xr.DataArray(da.from_array(lab, chunks=(7, 11, 13)), dims=("z", "y", "x"),
                       attrs={"voxel_size": (2.0, 1.0, 0.5), "unit": "nm", "phases": ["pore", "cbd", "active"]})
    tab = particles(vol, phase="cbd", intensity=da.from_array(img, chunks=(9, 9, 9)), split=False)
    ref_ids = label(lab == 1, connectivity=1)
    props = regionprops(ref_ids, intensity_image=img)
    assert len(tab) == len(props) > 20
    assert tab.id.tolist() == [p.label for p in props]
    np.testing.assert_array_equal(tab.voxels, [p.area for p in props])
    np.testing.assert_allclose(tab.volume, tab.voxels * 1.0)  # 2 * 1 * 0.5 nm^3 per voxel
    np.testing.assert_allclose(tab[["centroid_z", "centroid_y", "centroid_x"]].to_numpy(),
                               np.array([p.centroid for p in props]) * [2.0, 1.0, 0.5], rtol=1e-12)
    np.testing.assert_array_equal(tab[["bbox_z0", "bbox_y0", "bbox_x0", "bbox_z1", "bbox_y1", "bbox_x1"]],
                                  [p.bbox for p in props])
    np.testing.assert_allclose(tab.mean_intensity, [p.intensity_mean for p in props], rtol=1e-6)
    np.testing.assert_allclose(tab.equivalent_diameter, np.cbrt(6 * tab.volume / np.pi))
    # contact fractions from whole-array face areas (faces normal to z: 1 × 0.5 nm², to x: 2 × 1)
    faces = particle_face_areas(lab, ref_ids, 3, (2.0, 1.0, 0.5))
    inside = faces[:, :3].sum(1)
    np.testing.assert_allclose(tab.contact_pore, faces[:, 0] / inside)
    np.testing.assert_allclose(tab.contact_active, faces[:, 2] / inside)
    np.testing.assert_allclose(tab.contact_particle, 0)  # components never touch each other
    np.testing.assert_allclose(tab.contact_pore + tab.contact_active + tab.contact_particle, 1)
    np.testing.assert_allclose(tab.detachment, tab.contact_pore)
    np.testing.assert_array_equal(tab.touches_border, [min(p.bbox[:3]) == 0 or any(b == n for b, n in zip(p.bbox[3:], lab.shape))
                                                       for p in props])
    # marching-cubes area of each particle's indicator over the whole volume
    big = np.argsort(-tab.voxels.to_numpy())[:5]
    for i in big:
        ind = (ref_ids == i + 1).astype(np.uint8)
        whole = mc_field_areas(np.pad(ind, 1, mode="edge"), [(1,)], (2.0, 1.0, 0.5))[0]
        assert tab.surface_area[i] == pytest.approx(whole, rel=1e-9)
    assert tab.attrs["unit"] == "nm" and tab.attrs["phase"] == "cbd"


def test_contact_fractions_are_shares_of_area_with_anisotropic_voxels(electrode):
    """A volume with voxels twice as tall measures as the same volume with each slice repeated
    (cubic voxels): a side face is one face of area 2, not half as much as two faces of area 1."""
    lab = electrode[0]
    tall = xr.DataArray(da.from_array(lab, chunks=(7, 11, 13)), dims=("z", "y", "x"),
                        attrs={"voxel_size": (2.0, 1.0, 1.0), "unit": "nm"})
    cubic = xr.DataArray(da.from_array(np.repeat(lab, 2, axis=0), chunks=(14, 11, 13)), dims=("z", "y", "x"),
                         attrs={"voxel_size": (1.0, 1.0, 1.0), "unit": "nm"})
    a, b = (particles(v, phase="active", split=False) for v in (tall, cubic))
    cols = ["contact_pore", "contact_cbd", "contact_particle", "detachment"]
    assert len(a) == len(b) > 5 and (a.contact_pore > 0).sum() > 5
    np.testing.assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), rtol=1e-12)
    assert not np.allclose(a.contact_pore, particles(lab, split=False).contact_pore)  # counting faces differs


def test_split_table_does_not_depend_on_chunking(electrode):
    lab, img = electrode
    kw = dict(split=True, max_diameter=30, intensity=img)
    one = particles(lab, **kw)
    for chunks in ((7, 11, 13), (24, 25, 26), (30, 12, 40)):
        other = particles(da.from_array(lab, chunks=chunks), **kw)
        pd.testing.assert_frame_equal(one, other, check_exact=False, rtol=1e-9, atol=1e-12)
    assert len(one) > len(particles(lab, split=False))  # touching particles were split apart
    assert one.voxels.sum() == (lab == 2).sum()  # every active voxel belongs to one particle
    for chunks in ((7, 11, 13), (30, 12, 40)):  # label value = the table's id, for any chunking
        ids = particle_labels(da.from_array(lab, chunks=chunks), split=True, max_diameter=30).compute()
        np.testing.assert_array_equal(np.bincount(ids.ravel(), minlength=len(one) + 1)[1:], one.voxels.to_numpy())
        z = np.nonzero(ids)[0]
        np.testing.assert_allclose(np.bincount(ids[ids > 0], weights=z)[1:] / one.voxels.to_numpy(), one.centroid_z)


def test_two_touching_balls_are_split_and_measured():
    lab = _balls((48, 48, 64), [(24, 24, 20), (24, 24, 38)], 10)
    lab[:, :, 54:] = 1  # a CBD slab, touching neither ball
    whole = particles(lab, split=False)
    assert len(whole) == 1 and whole.contact_particle[0] == 0 and whole.detachment[0] == 1
    tab = particles(da.from_array(lab, chunks=(17, 20, 23)), split=True, max_diameter=24)
    assert len(tab) == 2
    ball = _balls((48, 48, 64), [(24, 24, 20)], 10).astype(bool).sum()
    np.testing.assert_allclose(tab.voxels, ball, rtol=0.03)
    np.testing.assert_allclose(tab.equivalent_diameter, 20, rtol=0.02)
    np.testing.assert_allclose(tab.sphericity, 1, atol=0.03)
    assert (tab.contact_particle > 0.02).all() and (tab.contact_cbd == 0).all()
    np.testing.assert_allclose(tab.centroid_x, [20, 38], atol=0.6)
    assert not tab.touches_border.any()


def test_detachment_and_border():
    lab = _balls((40, 40, 40), [(20, 20, 20)], 8)
    lab[:20][lab[:20] == 0] = 1  # CBD below the equator, pore above
    lab = _balls((40, 40, 40), [(0, 5, 5)], 4, base=lab)  # a particle cut by the border
    tab = particles(da.from_array(lab, chunks=13), max_diameter=20)
    assert len(tab) == 2
    ball = tab.iloc[np.argmax(tab.voxels.to_numpy())]
    assert ball.detachment == pytest.approx(0.5, abs=0.06)
    assert ball.contact_cbd == pytest.approx(0.5, abs=0.06)
    assert not ball.touches_border
    cut = tab.iloc[np.argmin(tab.voxels.to_numpy())]
    assert cut.touches_border
    # its surface is open at the border: no sphericity (the open area alone would give > 1)
    assert np.isnan(cut.sphericity) and 0.95 < ball.sphericity < 1.05


def test_series_gets_a_time_column():
    a = _balls((20, 24, 24), [(10, 12, 12)], 5)
    b = _balls((20, 24, 24), [(10, 6, 6), (10, 17, 17)], 4)
    ser = xr.DataArray(da.from_array(np.stack([a, b]), chunks=(1, 9, 10, 11)), dims=("t", "z", "y", "x"),
                       coords={"t": [0.0, 30.0]})
    tab = particles(ser, max_diameter=12)
    assert tab.t.tolist() == [0.0, 30.0, 30.0]
    assert tab.id.tolist() == [1, 1, 2]


def test_wide_particles_are_flagged():
    lab = _balls((40, 40, 40), [(20, 20, 20)], 12)
    with pytest.warns(UserWarning, match="max_diameter"):
        particles(da.from_array(lab, chunks=20), max_diameter=8)


def test_label_points_components_in_raster_order():
    vol = (10, 10, 10)
    pts = np.zeros(vol, bool)
    pts[5, 5, 5] = pts[5, 5, 6] = pts[5, 6, 6] = True
    pts[6, 7, 7] = True  # diagonal only: its own component
    pts[0, 9, 0] = True
    pts[9, 0, 9] = pts[9, 0, 8] = True
    index = np.flatnonzero(pts.ravel())
    ids = label_points(index, vol)
    ref = label(pts, connectivity=1).ravel()[index]
    np.testing.assert_array_equal(ids, ref)
    assert label_points(np.zeros(0, np.int64), vol).size == 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(phase="nmc"), "`phase`"),
    (dict(phase=5), "`phase`"),
    (dict(split="yes"), "`split`"),
    (dict(max_diameter=0), "`max_diameter`"),
    (dict(h=-1), "`h`"),
    (dict(intensity=np.zeros((3, 3, 3))), "`intensity`"),
])
def test_bad_arguments_are_named(kwargs, match):
    lab = _balls((12, 12, 12), [(6, 6, 6)], 3)
    with pytest.raises(InputError, match=match):
        particles(lab, **kwargs)


def test_labels_beyond_the_phases_are_refused():
    lab = _balls((12, 12, 12), [(6, 6, 6)], 3)
    lab[0, 0, 0] = 7
    with pytest.raises(InputError, match="`labels`.*7"):
        particles(lab)


def test_each_block_task_gets_only_the_markers_in_its_halo():
    from bigseg.measure._blockwise import BlockGeometry
    from bigseg.measure._particles import _markers_near

    vol = (20, 30, 40)
    rng = np.random.default_rng(0)
    index = np.sort(rng.choice(np.prod(vol), 300, replace=False))
    ids = np.arange(1, 301)
    geom = BlockGeometry(origin=(5, 10, 20), shape=(6, 8, 10), volume=vol, halo_lo=(3, 3, 3), halo_hi=(3, 0, 3))
    got = _markers_near(index, ids, vol)(geom)
    z, y, x = np.unravel_index(index, vol)
    want = (z >= 2) & (z < 14) & (y >= 7) & (y < 18) & (x >= 17) & (x < 33)
    np.testing.assert_array_equal(got["index"], index[want])
    np.testing.assert_array_equal(got["ids"], ids[want])


@pytest.mark.parametrize("seed", range(6))
def test_dome_tops_equal_scikit_image_h_maxima(seed):
    """The union-find dynamics give exactly skimage.morphology.h_maxima's markers (6-connected)
    on tie-broken distance maps: blobs, anisotropic voxels, several heights, a full mask."""
    from scipy import ndimage as ndi
    from skimage.morphology import h_maxima

    from bigseg.kernels.particles import _FACES, distance_map, dome_tops

    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(10, 36, 3))
    mask = ndi.gaussian_filter(rng.random(shape), 1.5) > rng.uniform(0.45, 0.55)
    if seed == 0:
        mask[:] = True
    spacing = tuple(float(v) for v in rng.choice([0.5, 1.0, 2.0], 3))
    d = distance_map(mask, tuple(int(v) for v in rng.integers(0, 50, 3)), tuple(s + 60 for s in shape), spacing)
    for h in (0.5, 1.0, 2.5):
        height = (h + 2e-6) * min(spacing)
        ref = h_maxima(d, height, footprint=_FACES).astype(bool) & mask
        np.testing.assert_array_equal(dome_tops(d, mask, height), ref)


def test_particles_are_tracked_through_a_series():
    """Step 0: balls A, B, C. Step 1: A moved by one voxel, B gone, C cracked into a larger and
    a smaller piece, D new. Tracks: A and C's larger piece continue; the smaller piece and D
    start tracks; numbering by first appearance; the same for any chunking."""
    shape = (30, 40, 90)
    a, b, c, d = (15, 20, 12), (15, 20, 34), (15, 20, 58), (15, 20, 80)
    f0 = _balls(shape, [a, b, c], 7)
    f1 = _balls(shape, [(16, 20, 12), c], 7)
    f1[:, :, 61] = 0  # a crack through C, 3 voxels right of its centre
    f1 = _balls(shape, [d], 6, base=f1)
    series = np.stack([f0, f1])
    for chunks in ((1, 30, 40, 90), (1, 11, 17, 23)):
        tab = particles(da.from_array(series, chunks=chunks), split=False)
        t0, t1 = tab[tab.t == 0], tab[tab.t == 1]
        assert list(t0.track) == [1, 2, 3]  # A, B, C in raster order
        by_x = t1.sort_values("centroid_x")
        # A continues (track 1); C's larger piece continues C (track 3); D (track 4: its first
        # voxel, z = 9, comes before the small piece's, z = 10, in raster order) and the piece are new
        assert list(by_x.track) == [1, 3, 5, 4]
        assert by_x.voxels.iloc[1] > by_x.voxels.iloc[2]
        assert 2 not in set(t1.track)  # B ended
    # the instance labels of a series carry the track: one value per particle through time
    ids = particle_labels(da.from_array(series, chunks=(1, 11, 17, 23)), split=False).compute()
    assert ids.shape == series.shape and ids.dtype == np.int32
    tab = particles(series, split=False)
    for t in (0, 1):
        one = tab[tab.t == t]
        np.testing.assert_array_equal(np.bincount(ids[t].ravel(), minlength=6)[one.track.to_numpy()],
                                      one.voxels.to_numpy())
        assert set(np.unique(ids[t])) - {0} == set(one.track)
    from bigseg.kernels.particles import mutual_matches

    pairs = np.array([[1, 1], [1, 2], [2, 2]])
    # 1 overlaps 1 and 2 equally: the smaller id wins; 2's best partner (2) prefers 2; min_fraction
    assert mutual_matches(pairs, np.array([5, 5, 4]), np.array([0, 10, 8]), np.array([0, 6, 9])) == {1: 1}
    assert mutual_matches(pairs, np.array([5, 5, 4]), np.array([0, 10, 8]), np.array([0, 6, 9]), 0.9) == {}
    with pytest.raises(InputError, match="`min_overlap`"):
        particles(series, min_overlap=0)


def test_track_numbers_beyond_int32_are_not_wrapped(monkeypatch):
    """A series numbers its tracks over all its steps (hundreds of steps of millions of
    particles pass 2**31 - 1): the label image then widens to int64; the int32 cast wrapped
    track 2**31 to -2**31."""
    from bigseg.measure import _particles

    tracks = _particles._tracks
    monkeypatch.setattr(_particles, "_tracks", lambda *a: [t + (2**31 - 2) for t in tracks(*a)])
    f0 = _balls((8, 8, 14), [(4, 4, 3), (4, 4, 10)], 2)
    series = np.stack([f0, np.roll(f0, 1, axis=2)])
    ids = particle_labels(da.from_array(series, chunks=(1, 8, 8, 7)), split=False)
    assert ids.dtype == np.int64
    out = ids.compute()
    assert out.dtype == np.int64
    for t in (0, 1):
        assert set(np.unique(out[t]).tolist()) == {0, 2**31 - 1, 2**31}


@pytest.mark.parametrize("split", [False, True])
def test_particle_ids_beyond_int32_are_not_wrapped(monkeypatch, split):
    """More than 2**31 - 1 particles in one frame (10**11 voxels): the raw ids widen to int64;
    the int32 cast wrapped id 2**31 to -2**31, which the label image dropped (0) and the
    series' overlaps took for no particle (a new track). Here the ids start at 2**31 - 1."""
    from bigseg.measure import _particles

    if split:
        points = _particles.label_points
        monkeypatch.setattr(_particles, "label_points", lambda *a: points(*a) + (2**31 - 2))
    else:
        join = _particles.join_components
        monkeypatch.setattr(_particles, "join_components", lambda *a: join(*a) + (2**31 - 2))
    f0 = _balls((8, 8, 14), [(4, 4, 3), (4, 4, 10)], 2)
    series = np.stack([f0, f0])
    arr = da.from_array(series, chunks=(1, 8, 8, 7))
    ids = particle_labels(arr, split=split, max_diameter=4).compute()
    for t in (0, 1):
        assert np.bincount(ids[t].ravel()).tolist() == [int((f0 != 2).sum()), 33, 33]
    tab = particles(arr, split=split, max_diameter=4)
    assert tab.track.tolist() == [1, 2, 1, 2] and tab.voxels.tolist() == [33] * 4


def test_track_numbers_up_to_int32_max_stay_int32(monkeypatch):
    """The documented dtype: int32 while the largest track number fits (2**31 - 1 included)."""
    from bigseg.measure import _particles

    tracks = _particles._tracks
    monkeypatch.setattr(_particles, "_tracks", lambda *a: [t + (2**31 - 3) for t in tracks(*a)])
    f0 = _balls((8, 8, 14), [(4, 4, 3), (4, 4, 10)], 2)
    ids = particle_labels(da.from_array(np.stack([f0, f0]), chunks=(1, 8, 8, 7)), split=False)
    assert ids.dtype == np.int32
    assert set(np.unique(ids.compute()).tolist()) == {0, 2**31 - 2, 2**31 - 1}


def test_stored_particle_ids_beyond_int32_are_not_wrapped(tmp_path, monkeypatch):
    """Ids written beside ``labels_to`` between the passes keep their width: stored as int32,
    id 2**31 read back as -2**31 (no particle), so the table lost that particle and the label
    image its voxels."""
    import bigseg
    from bigseg.measure import _particles

    join = _particles.join_components
    monkeypatch.setattr(_particles, "join_components", lambda *a: join(*a) + (2**31 - 2))
    f0 = _balls((8, 8, 14), [(4, 4, 3), (4, 4, 10)], 2)
    image = tmp_path / "scan.ome.zarr"
    bigseg.save_volume(f0.astype(np.float32), image, progress=False)
    tab = particles(da.from_array(f0, chunks=(8, 8, 7)), split=False, labels_to=image / "labels" / "p")
    assert tab.voxels.tolist() == [33, 33]
    assert np.bincount(bigseg.open_volume(image / "labels" / "p").values.ravel()).tolist() == [
        int((f0 != 2).sum()), 33, 33]


def test_overlap_counts_of_ids_beyond_int32():
    """The (id a, id b) key: int64 ``a << 32`` overflowed for ``a >= 2**31`` (read back -2**31)."""
    from bigseg.kernels.particles import overlap_counts

    a = np.array([2**31, 2**31, 5, 0, 2**33], np.int64)
    b = np.array([7, 7, 2**32 - 1, 4, 1], np.int64)
    pairs, counts = overlap_counts(a[:3], b[:3])
    assert pairs.tolist() == [[5, 2**32 - 1], [2**31, 7]] and counts.tolist() == [1, 2]
    pairs, counts = overlap_counts(a, b)  # beyond 32 bits: pairs, not keys
    assert pairs.tolist() == [[5, 2**32 - 1], [2**31, 7], [2**33, 1]] and counts.tolist() == [1, 2, 1]


def test_labels_to_writes_the_instance_labels_of_the_same_split(tmp_path, electrode):
    """One pass: the label image written beside the table equals particle_labels (3D and a series,
    irregular chunks); an existing one is refused before any work; no scratch is left."""
    import bigseg

    lab, img = electrode
    image = tmp_path / "scan.ome.zarr"
    bigseg.save_volume(img, image, progress=False)
    for chunks in ((7, 11, 13), (30, 12, 40)):
        src = da.from_array(lab, chunks=chunks)
        target = image / "labels" / f"p{chunks[0]}"
        tab = particles(src, split=True, max_diameter=30, labels_to=target)
        ref = particle_labels(src, split=True, max_diameter=30).compute()
        np.testing.assert_array_equal(bigseg.open_volume(target).values, ref)
        pd.testing.assert_frame_equal(tab, particles(src, split=True, max_diameter=30))
    with pytest.raises(OutputExistsError, match="`labels_to`"):
        particles(lab, labels_to=image / "labels" / "p7")
    with pytest.raises(InputError, match="`labels_to`.*IMAGE/labels/NAME"):
        particles(lab, labels_to=tmp_path / "p.zarr")
    particles(lab, split=False, labels_to=image / "labels" / "p7", overwrite=True)
    np.testing.assert_array_equal(bigseg.open_volume(image / "labels" / "p7").values,
                                  particle_labels(lab, split=False).compute())
    series = np.stack([lab, np.roll(lab, 2, axis=2)])
    simage = tmp_path / "series.ome.zarr"
    bigseg.save_volume(np.stack([img, img]), simage, progress=False)
    tab = particles(da.from_array(series, chunks=(1, 9, 25, 16)), split=False, labels_to=simage / "labels" / "tracks")
    np.testing.assert_array_equal(bigseg.open_volume(simage / "labels" / "tracks").values,
                                  particle_labels(series, split=False).compute())
    assert tab.track.max() >= len(tab[tab.t == 0])
    assert not [p for p in tmp_path.rglob("*") if ".particle-ids-" in p.name]


def test_only_particles_reaching_beyond_a_crossed_block_s_halo_are_flagged():
    from bigseg.measure._particles import _beyond_halo

    lab = np.zeros((20, 20, 130), np.uint8)
    lab[5:15, 5:15, 5:55] = 2  # 50 long, inside the first block (x 0-64): seen whole
    lab[5:15, 5:15, 60:75] = 2  # crosses x = 64, 4 and 11 voxels either side: within a halo of 12
    tab = particles(da.from_array(lab, chunks=(20, 20, 64)), max_diameter=12)  # no warning
    assert list(_beyond_halo(tab, ((20,), (20,), (64, 64, 2)), 12)) == [False, False]
    assert list(_beyond_halo(tab, ((20,), (20,), (64, 64, 2)), 8)) == [False, True]
    assert list(_beyond_halo(tab, ((20,), (20,), (30, 34, 66)), 12)) == [True, False]
    with pytest.warns(UserWarning, match="belong to no particle.*`measure.max_diameter`"):  # cut apart at x = 30
        particles(da.from_array(lab, chunks=(20, 20, 30)), max_diameter=12)
    rod = np.zeros((12, 14, 30), np.uint8)
    rod[3:9, 4:10, 2:28] = 2  # its one marker lies beyond the halo of the last block: voxels left over
    with pytest.warns(UserWarning, match="288 voxel.*belong to no particle"):
        tab = particles(da.from_array(rod, chunks=(12, 14, 10)), max_diameter=10)
    assert tab.voxels.sum() == 648


def test_a_particle_too_small_for_a_surface_has_no_area_not_zero():
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[3, 3, 3:5] = 2  # two voxels
    zz, yy, xx = np.mgrid[:20, :20, :20]
    lab[(zz - 12) ** 2 + (yy - 12) ** 2 + (xx - 12) ** 2 <= 25] = 2  # a ball of radius 5
    table = particles(lab, split=False).sort_values("voxels")
    assert np.isnan(table.surface_area.iloc[0]) and np.isnan(table.sphericity.iloc[0])
    assert table.surface_area.iloc[1] == pytest.approx(4 * np.pi * 5.0 ** 2, rel=0.15)


def test_a_smoothed_area_below_the_ball_of_the_same_volume_is_not_reported():
    """No closed surface is smaller than the ball of its volume: the smoothed area of small balls
    and of thin CBD sheets read far below it (sphericity up to ~200) and is NaN, not a number."""
    lab = np.zeros((40, 40, 60), np.uint8)
    lab = _balls(lab.shape, [(20, 20, 15)], 10, base=lab)  # radius 10: measured (1.016)
    lab = _balls(lab.shape, [(20, 20, 45)], 3, base=lab)  # radius 3: reads 26 % low
    tab = particles(lab, split=False)
    assert len(tab) == 2
    assert tab.sphericity[0] == pytest.approx(1.016, abs=0.01) and np.isfinite(tab.surface_area[0])
    assert np.isnan(tab.sphericity[1]) and np.isnan(tab.surface_area[1]) and tab.voxels[1] > 100
    cbd = particles(bigseg.synth.electrode((48, 64, 64), radius=(4, 1), seed=3), phase="cbd", split=False)
    assert (cbd.sphericity.dropna() <= 1.1).all()  # were up to 201
    inside = cbd[~cbd.touches_border & (cbd.voxels >= 14)]
    assert inside.surface_area.isna().sum() >= 20  # measured 2-200× low before
    assert cbd[cbd.touches_border].surface_area.notna().sum() > 0  # border particles keep their open area


def test_crofton_particle_areas_add_up_over_blocks_and_match_the_phase_areas():
    from bigseg.kernels.crofton import crofton_areas

    lab = bigseg.synth.electrode((30, 36, 40), radius=(3, 1), seed=5).values
    one = particles(lab, split=False, area_method="crofton")
    other = particles(da.from_array(lab, chunks=(7, 11, 13)), split=False, area_method="crofton")
    np.testing.assert_allclose(one.surface_area, other.surface_area, rtol=1e-12, equal_nan=True)
    assert one.attrs["surface_area_method"] == "crofton"
    inside = ~one.touches_border  # more particles with a measurable shape than with the meshes
    assert one.sphericity[inside].notna().sum() > particles(lab, split=False).sphericity.notna().sum()
    ball = _balls((30, 30, 30), [(14.6, 15.2, 14.9)], 3)
    p = particles(ball, split=False, area_method="crofton")
    assert p.surface_area[0] == pytest.approx(crofton_areas(ball, (0, 0, 0), (0, 0, 0), 3, (1.0,) * 3)[0, 2])
    assert p.surface_area[0] == pytest.approx(4 * np.pi * 9, rel=0.03) and p.sphericity[0] == pytest.approx(1.0, abs=0.03)
    with pytest.raises(InputError, match="`area_method`"):
        particles(ball, area_method="faces")


@pytest.mark.parametrize("spacing, n_phases, most_id", [((1.0, 1.0, 1.0), 3, 5), ((2.0, 1.0, 0.5), 3, 5),
                                                         ((1.0, 1.0, 1.0), 200, 400)],
                         ids=["cubic", "anisotropic", "many-phases-and-particles"])
def test_block_contacts_and_crofton_areas_equal_a_voxel_by_voxel_count(spacing, n_phases, most_id):
    # particle_partials counts each particle voxel's faces and Crofton crossings with whole-block
    # comparisons and one index image (vectorised, 2x faster): the same as visiting every voxel's
    # neighbours, with a halo, the volume's border (-1) and unlabelled (255) voxels among them;
    # and with up to 254 phases (codes past int8's 127 are phases, not the border) and particles
    # enough that their contact columns, n * (n_phases + 1), pass int16's 32767
    import itertools

    from bigseg.kernels.crofton import DIRECTIONS, crofton_weights
    from bigseg.kernels.particles import particle_partials

    rng = np.random.default_rng(5)
    shape, lo, hi, origin = (9, 11, 10), (2, 0, 3), (1, 0, 0), (4, 0, 2)
    core = tuple(s - a - b for s, a, b in zip(shape, lo, hi))
    volume = tuple(o + c + e for o, c, e in zip(origin, core, (3, 0, 0)))  # y starts, y and x end in the block
    codes = rng.integers(0, n_phases, shape).astype(np.uint8)
    codes[rng.random(shape) < 0.5 * (n_phases > 3)] = 2  # many phases: half the voxels the particles'
    codes[rng.random(shape) < 0.05] = 255
    ids = np.where(codes == 2, rng.integers(1, most_id, shape), 0).astype(np.int32)
    got = particle_partials(ids, codes, None, phase=2, n_phases=n_phases, origin=origin, shape=core, volume=volume,
                            halo_lo=lo, halo_hi=hi, spacing=spacing, area_method="crofton")
    row = {int(i): j for j, i in enumerate(got["id"])}
    contacts, area = np.zeros_like(got["contacts"]), np.zeros_like(got["area"])
    v = float(np.prod(spacing))
    w, length = crofton_weights(spacing)
    for z, y, x in itertools.product(*(range(a, a + c) for a, c in zip(lo, core))):
        pid = ids[z, y, x]
        if not pid:
            continue
        j = row[int(pid)]
        for a, step in itertools.product(range(3), (-1, 1)):  # faces
            q = [z, y, x]
            q[a] += step
            inside = all(0 <= c < n for c, n in zip(q, shape))
            if inside and ids[tuple(q)] == pid:
                continue
            cat = n_phases if not inside else min(int(codes[tuple(q)]), n_phases)
            contacts[j, cat] += v / spacing[a]
        for d, wd, ld in zip(DIRECTIONS, w, length):  # crossings, both ways along each direction
            for sign in (-1, 1):
                q = tuple(c + sign * o for c, o in zip((z, y, x), d))
                if all(0 <= c < n for c, n in zip(q, shape)) and ids[q] != pid and codes[q] < n_phases:
                    area[j] += 2.0 * wd * v / ld
    assert len(row) > 3 and area.sum() > 0 and contacts[:, n_phases].sum() > 0  # the volume's border was met
    if n_phases > 3:
        assert len(row) * (n_phases + 1) > np.iinfo(np.int16).max and contacts[:, 128:n_phases].sum() > 0
    np.testing.assert_allclose(got["contacts"], contacts, rtol=1e-12)
    np.testing.assert_allclose(got["area"], area, rtol=1e-12)


@pytest.mark.parametrize("split", [False, True])
def test_min_voxels_leaves_small_particles_out_of_the_table_its_numbering_and_the_labels(tmp_path, split):
    """Particles of fewer than ``min_voxels`` voxels (specks a threshold leaves): no row, the rows
    numbered among those kept, 0 in the instance labels, counted in the attrs; the same for any
    chunking; with split=False, scikit-image's ``remove_small_objects`` then ``label`` as the reference."""
    from skimage.morphology import remove_small_objects

    rng = np.random.default_rng(4)
    lab = _balls((24, 30, 34), [(8, 8, 8), (15, 20, 24)], 5)
    specks = rng.random(lab.shape) < 0.01  # single voxels and pairs in the pore
    lab[specks & (lab == 0)] = 2
    keep = remove_small_objects(lab == 2, max_size=26, connectivity=1)  # (26 and fewer removed: 27 kept)
    ref = label(keep, connectivity=1)
    n_all = int(label(lab == 2, connectivity=1).max())
    for chunks in ((24, 30, 34), (7, 11, 13)):
        arr = da.from_array(lab, chunks=chunks)
        tab = particles(arr, split=split, min_voxels=27)
        full = particles(arr, split=split)
        big = full[full.voxels >= 27].reset_index(drop=True)
        assert len(tab) == len(big) >= 2 and tab.id.tolist() == list(range(1, len(tab) + 1))
        # every kept particle's row as it was, but its id
        pd.testing.assert_frame_equal(tab.drop(columns="id"), big.drop(columns="id"), check_like=False)
        assert tab.attrs["small_particles"] == len(full) - len(big) > 20
        assert tab.attrs["small_voxels"] == int(full.voxels[full.voxels < 27].sum())
        assert tab.attrs["min_voxels"] == 27
        if not split:
            assert len(tab) == ref.max() and len(full) == n_all
            np.testing.assert_array_equal(tab.voxels, np.bincount(ref.ravel())[1:])
        ids = particle_labels(arr, split=split, min_voxels=27).compute()
        np.testing.assert_array_equal(np.bincount(ids.ravel(), minlength=len(tab) + 1)[1:], tab.voxels)
        if not split:
            np.testing.assert_array_equal(ids, ref)
    # labels_to: the same instance labels from the table's split
    store = tmp_path / "s.ome.zarr"
    bigseg.io.save_volume(xr.DataArray(lab.astype(np.float32), dims=("z", "y", "x")), store, chunks=(7, 11, 13))
    tab = particles(da.from_array(lab, chunks=(7, 11, 13)), split=split, min_voxels=27,
                    labels_to=store / "labels" / "particles")
    stored = bigseg.io.open_volume(store / "labels" / "particles").values
    np.testing.assert_array_equal(stored, particle_labels(lab, split=split, min_voxels=27).compute())
    assert int(stored.max()) == len(tab)
    with pytest.raises(InputError, match="`min_voxels`"):
        particles(lab, min_voxels=0)
    with pytest.raises(InputError, match="`min_voxels`"):
        particle_labels(lab, min_voxels=2.5)


def test_min_voxels_in_a_series_tracks_the_particles_kept():
    """A particle that shrinks below ``min_voxels`` has no row at that step (its track ends there);
    a speck beside a ball neither takes nor breaks the ball's track."""
    shape = (20, 20, 40)
    f0 = _balls(shape, [(10, 10, 10), (10, 10, 28)], 5)
    f1 = _balls(shape, [(10, 10, 10)], 5)
    f1 = _balls(shape, [(10, 10, 28)], 1, base=f1)  # the second ball shrinks to 7 voxels
    f1[0, 0, 0] = 2  # a speck
    series = da.from_array(np.stack([f0, f1]), chunks=(1, 7, 9, 11))
    tab = particles(series, split=False, min_voxels=20)
    t0, t1 = tab[tab.t == 0], tab[tab.t == 1]
    assert list(t0.track) == [1, 2] and list(t1.track) == [1]
    assert tab.attrs["small_particles"] == 2 and tab.attrs["small_voxels"] == 8
    ids = particle_labels(series, split=False, min_voxels=20).compute()
    assert set(np.unique(ids[1]).tolist()) == {0, 1} and set(np.unique(ids[0]).tolist()) == {0, 1, 2}


def test_min_voxels_in_a_series_counts_the_small_particles_of_every_step():
    """``attrs["small_particles"]``/``["small_voxels"]`` of a series add up every step's (a speck
    at the first step and two at the last: 3 particles, 1 + 2 + 1 voxels)."""
    shape = (12, 12, 16)
    f0 = _balls(shape, [(6, 6, 8)], 4)
    f1 = f0.copy()
    f0[0, 0, 0] = 2
    f1[0, 0, 0] = f1[0, 0, 1] = 2  # a speck of 2 voxels
    f1[11, 11, 15] = 2
    tab = particles(da.from_array(np.stack([f0, f1]), chunks=(1, 5, 7, 9)), split=False, min_voxels=5)
    assert tab.t.tolist() == [0, 1] and tab.track.tolist() == [1, 1]
    assert tab.attrs["small_particles"] == 3 and tab.attrs["small_voxels"] == 4


@pytest.mark.parametrize("split", [False, True])
def test_min_voxels_keeps_a_particle_of_exactly_that_many_voxels_in_the_table_and_the_labels(split):
    """``min_voxels`` is the smallest particle kept: a 3 x 3 x 3 cube (27 voxels) has its row and
    its label at ``min_voxels=27``, a 26-voxel one neither (the table and particle_labels alike)."""
    lab = np.zeros((12, 12, 20), np.uint8)
    lab[2:5, 2:5, 2:5] = 2  # 27 voxels
    lab[2:5, 2:5, 10:13] = 2
    lab[4, 4, 12] = 0  # 26 voxels
    for chunks in ((12, 12, 20), (5, 7, 6)):
        arr = da.from_array(lab, chunks=chunks)
        tab = particles(arr, split=split, min_voxels=27)
        assert tab.voxels.tolist() == [27] and tab.attrs["small_particles"] == 1 and tab.attrs["small_voxels"] == 26
        ids = particle_labels(arr, split=split, min_voxels=27).compute()
        assert np.bincount(ids.ravel()).tolist() == [lab.size - 27, 27] and (ids[2:5, 2:5, 2:5] == 1).all()


def test_principal_axes_match_whole_volume_moments_for_any_chunking(electrode):
    """Axis lengths from the particles' second moments summed over blocks: equal to the moments of
    each particle's voxels taken whole (NumPy) and to scikit-image's inertia tensor, each voxel a solid
    box; an ellipsoid's axes; anisotropic voxels."""
    lab = electrode[0]
    vs = (2.0, 1.0, 0.5)
    ref_ids = label(lab == 2, connectivity=1)
    ref = []
    for i in range(1, ref_ids.max() + 1):
        pts = np.argwhere(ref_ids == i) * vs
        cov = np.cov(pts.T, bias=True) + np.diag(np.square(vs) / 12)
        ref.append(np.sqrt(20 * np.linalg.eigvalsh(cov))[::-1])
    ref = np.array(ref)
    for chunks in ((30, 36, 40), (7, 11, 13)):
        vol = xr.DataArray(da.from_array(lab, chunks=chunks), dims=("z", "y", "x"),
                           attrs={"voxel_size": vs, "unit": "nm"})
        tab = particles(vol, split=False)
        assert len(tab) == len(ref) > 10
        np.testing.assert_allclose(tab.axis_major_length, ref[:, 0], rtol=1e-9)
        np.testing.assert_allclose(tab.axis_minor_length, ref[:, 2], rtol=1e-9)
        np.testing.assert_allclose(tab.aspect_ratio, ref[:, 0] / ref[:, 2], rtol=1e-9)
        assert tab.attrs["units"]["axis_major_length"] == "nm" and tab.attrs["units"]["aspect_ratio"] == "1"
    # scikit-image's inertia tensor I (voxels as points): covariance = tr(I) / 2 - I, plus each voxel's own
    for p, major, minor in zip(regionprops(ref_ids, spacing=vs), tab.axis_major_length, tab.axis_minor_length):
        inertia = p.inertia_tensor
        cov = np.trace(inertia) / 2 * np.eye(3) - inertia + np.diag(np.square(vs) / 12)
        lam = np.linalg.eigvalsh(cov)
        assert (major, minor) == pytest.approx((np.sqrt(20 * lam[2]), np.sqrt(20 * lam[0])), rel=1e-9)
    # an ellipsoid of semi-axes 8, 5, 14 voxels: full axes 28 and 10, aspect ratio 2.8
    z, y, x = np.ogrid[:40, :40, :60]
    ell = (((z - 20) / 8.0) ** 2 + ((y - 20) / 5.0) ** 2 + ((x - 30) / 14.0) ** 2 <= 1).astype(np.uint8) * 2
    one = particles(da.from_array(ell, chunks=(13, 17, 19)), split=False)
    assert one.axis_major_length[0] == pytest.approx(28, rel=0.01)
    assert one.axis_minor_length[0] == pytest.approx(10, rel=0.02)
    assert one.aspect_ratio[0] == pytest.approx(2.8, rel=0.02)
