"""A box cut from a scan keeps its place: translation on disk, coordinates, labels written into
it, particle centroids in the scan's frame; a whole scan keeps origin 0 and no translation."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bigseg
from bigseg import measure
from bigseg.io import make_volume, open_volume, origin_of, save_labels, save_volume


def _transforms(store):
    meta = json.loads((store / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    return [d["coordinateTransformations"] for d in meta["datasets"]]


def test_a_cropped_scan_keeps_its_place_through_ingest_labels_and_particles(tmp_path):
    rng = np.random.default_rng(0)
    scan = (rng.random((20, 24, 28)) > 0.7).astype(np.float32)
    np.save(tmp_path / "s.npy", scan)
    box = bigseg.ingest(tmp_path / "s.npy", tmp_path / "box.ome.zarr", crop="2:18,:,4:24", voxel_size=(50, 40, 40),
                        unit="nm", levels=2, progress=False)
    assert origin_of(box) == (100.0, 0.0, 160.0)
    np.testing.assert_allclose(box.x.values[:3], [160, 200, 240])
    level0, level1 = _transforms(tmp_path / "box.ome.zarr")
    assert {"type": "translation", "translation": [100.0, 0.0, 160.0]} in level0
    # level 1 averages pairs of voxels: its first voxel centre lies half a voxel in
    assert {"type": "translation", "translation": [125.0, 20.0, 180.0]} in level1
    labels = (box > 0.5).astype(np.uint8) * 2
    save_labels(labels.data, tmp_path / "box.ome.zarr", phases=["pore", "cbd", "active"], progress=False)  # plain dask
    lab = open_volume(tmp_path / "box.ome.zarr" / "labels" / "segmentation")
    assert origin_of(lab) == (100.0, 0.0, 160.0)
    table = measure.particles(lab, split=False)
    whole = make_volume((scan > 0.5).astype(np.uint8) * 2, voxel_size=(50, 40, 40), unit="nm",
                        phases=["pore", "cbd", "active"])
    ref = measure.particles(whole[2:18, :, 4:24], split=False)  # xarray keeps the coordinates of the cut
    np.testing.assert_allclose(table[["centroid_z", "centroid_y", "centroid_x"]].to_numpy(),
                               ref[["centroid_z", "centroid_y", "centroid_x"]].to_numpy())
    mid = table.bbox_x0 + (table.bbox_x1 - table.bbox_x0) / 2
    assert (table.centroid_x >= 160).all() and (table.centroid_x.to_numpy() > mid.to_numpy() * 40).all()


def test_a_whole_volume_has_origin_zero_and_no_translation(tmp_path):
    save_volume(np.zeros((4, 5, 6), np.float32), tmp_path / "v.ome.zarr", voxel_size=2.0, progress=False)
    assert all(t["type"] == "scale" for level in _transforms(tmp_path / "v.ome.zarr") for t in level)
    assert origin_of(open_volume(tmp_path / "v.ome.zarr")) == (0.0, 0.0, 0.0)
    # a new voxel size moves a cut box with it (its first voxel's index is kept)
    v = make_volume(np.zeros((8, 8, 8), np.float32))[3:, 2:, :]
    save_volume(v, tmp_path / "w.ome.zarr", voxel_size=(10.0, 20.0, 30.0), progress=False)
    assert origin_of(open_volume(tmp_path / "w.ome.zarr")) == (30.0, 40.0, 0.0)


def test_coordinates_that_disagree_with_the_voxel_size_are_warned_about():
    """A strided slice keeps attrs['voxel_size'] but doubles the coordinates' step: areas would be
    half what they are. Coordinates that agree, or are plain indices, say nothing."""
    import warnings

    import xarray as xr

    from bigseg import measure, synth

    lab = synth.electrode((12, 16, 16), seed=1, voxel_size=50, unit="nm")
    with pytest.warns(UserWarning, match=r"`labels`'s y coordinates step by 100, but attrs\['voxel_size'\] says 50 nm"):
        measure.volume_fractions(lab.isel(y=slice(None, None, 2)))
    with pytest.warns(UserWarning, match="y coordinates step by 100") as told:  # the user's line, at any depth
        measure.interfaces(lab.isel(y=slice(None, None, 2)))
    assert {w.filename for w in told} == {__file__}
    own = xr.DataArray(lab.values, dims=("z", "y", "x"), coords={"x": [0.0, 1, 2, 4] + list(range(5, 17))})
    with pytest.warns(UserWarning, match="x coordinates are not evenly spaced, but it has no attrs"):
        measure.volume_fractions(own)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measure.volume_fractions(lab.isel(y=slice(3, 11)))  # a box: same step
        measure.volume_fractions(xr.DataArray(lab.values, dims=("z", "y", "x"), coords={"z": range(12)},
                                              attrs={"voxel_size": 50}))  # indices


@pytest.mark.parametrize("crop", [(slice(None),) * 3, (slice(3, None), slice(1, None), slice(2, None))])
def test_each_pyramid_level_lies_over_the_voxels_it_was_made_from(tmp_path, crop):
    """An image level's voxel is the mean of 2**k voxels: its coordinate is theirs averaged (a
    viewer then overlays the levels); a label level keeps every 2**k-th voxel: its coordinate."""
    rng = np.random.default_rng(1)
    v = make_volume(rng.random((19, 21, 24), dtype=np.float32), voxel_size=(2.0, 3.0, 5.0))[crop]
    save_volume(v, tmp_path / "v.ome.zarr", levels=3, progress=False)
    lab = (v > 0.5).astype(np.uint8)
    save_labels(lab, tmp_path / "v.ome.zarr", phases=["a", "b"], progress=False)  # levels: the image's 3
    for k in range(3):
        img = open_volume(tmp_path / "v.ome.zarr", level=k)
        seg = open_volume(tmp_path / "v.ome.zarr" / "labels" / "segmentation", level=k)
        ref = v.coarsen(z=2**k, y=2**k, x=2**k, boundary="trim").mean() if k else v
        assert seg.shape == img.shape == ref.shape, k  # odd extents trimmed alike
        for d in "zyx":
            np.testing.assert_allclose(img[d].values, ref[d].values, err_msg=f"level {k} {d}")
            n = (v.sizes[d] // 2**k) * 2**k
            np.testing.assert_allclose(seg[d].values, v[d].values[: n : 2**k], err_msg=f"labels level {k} {d}")
        np.testing.assert_array_equal(seg.values, lab.values[tuple(slice(0, n_k * 2**k, 2**k) for n_k in seg.shape)])
        np.testing.assert_allclose(img.values, ref.values, rtol=1e-6)


def test_a_crop_given_another_unit_by_its_attrs_is_told_how_to_keep_its_place(tmp_path):
    """`crop.attrs.update(voxel_size=0.05, unit="um")` leaves the coordinates in nm: the crop was
    stored 4000 voxels into the scan (z0 = 200 um), and the warning said to set the attribute the
    user had just set. It names bigseg.io.recalibrated, which moves the coordinates too: the crop
    stays 4 voxels in, at 0.2 um."""
    import warnings

    from bigseg.io import recalibrated

    lab = bigseg.synth.electrode((20, 16, 16), seed=1, chunks=8, voxel_size=50, unit="nm")
    crop = lab.isel(z=slice(4, 16))
    edited = crop.copy()
    edited.attrs.update(voxel_size=(0.05,) * 3, unit="um")
    with pytest.warns(UserWarning, match=r"z coordinates step by 50, but attrs\['voxel_size'\] says 0\.05 um.*"
                                         r"bigseg\.io\.recalibrated\(data, voxel_size, unit\)"):
        save_volume(edited, tmp_path / "edited.ome.zarr", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_volume(recalibrated(crop, 0.05, "um"), tmp_path / "c.ome.zarr", progress=False)
    back = open_volume(tmp_path / "c.ome.zarr")
    assert back.attrs["unit"] == "um" and back.attrs["voxel_size"] == pytest.approx((0.05,) * 3)
    assert origin_of(back) == pytest.approx((0.2, 0.0, 0.0))
    assert crop.attrs["unit"] == "nm" and float(crop.z[0]) == 200.0  # the input as it was


def test_disagreeing_coordinates_are_warned_about_at_the_users_line():
    """The warning named a line inside bigseg (`v = _volume(vol)` in filters/_filters.py, or
    _threshold.py, _segment.py, ... by how deep the check was): a notebook showed that line, not
    the user's call. Every check of every step names the caller's line now."""
    import warnings

    from bigseg import baselines, filters, measure, synth

    lab = synth.electrode((12, 16, 16), seed=1, chunks=8, voxel_size=50, unit="nm")
    img = synth.xct(lab)
    strided, lab_strided = img.isel(y=slice(None, None, 2)), lab.isel(y=slice(None, None, 2))
    for call in (lambda: filters.gaussian(strided), lambda: filters.normalize(strided),
                 lambda: baselines.threshold(strided), lambda: bigseg.infer.segment(strided, "default"),
                 lambda: measure.interfaces(lab_strided), lambda: measure.particles(lab_strided)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        # once per call: each nested step re-checked the volume (2-4 warnings for one segment)
        assert len(caught) == 1 and caught[0].filename == __file__, [(w.filename, w.lineno) for w in caught]
        assert "y coordinates step by 100, but attrs['voxel_size'] says 50 nm" in str(caught[0].message)
