"""Gaps a mutation-testing audit of bigseg.io found: each test fails on a seeded mistake that
the rest of the suite let through (pyramid values, level counts, ...), checked against an
independent NumPy / tifffile / h5py reference."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import bigseg
from bigseg.errors import InputError
from bigseg.io import make_volume


def _block_mean(a: np.ndarray, f: int = 2) -> np.ndarray:
    """Mean of f x f x f blocks (the excess trimmed), in float64: the reference of a mean level."""
    n = [s // f * f for s in a.shape]
    a = a[: n[0], : n[1], : n[2]].astype(np.float64)
    return a.reshape(n[0] // f, f, n[1] // f, f, n[2] // f, f).mean(axis=(1, 3, 5))


def test_an_integer_image_pyramid_rounds_each_blocks_mean(tmp_path, rng):
    # values whose 2x2x2 means end in .5 or above for most blocks: truncating them shows
    img = rng.integers(0, 1000, (13, 18, 21)).astype(np.uint16)
    bigseg.save_volume(da.from_array(img, chunks=(5, 7, 8)), tmp_path / "p.ome.zarr", levels=3, progress=False)
    for level in (1, 2):
        want = _block_mean(img, 2**level) if level == 1 else _block_mean(
            np.round(_block_mean(img)).astype(np.uint16))
        got = bigseg.open_volume(tmp_path / "p.ome.zarr", level=level)
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got.values, np.round(want).astype(np.uint16))


def test_as_many_levels_as_the_shortest_axis_allows_and_no_more(tmp_path, rng):
    img = rng.random((9, 17, 33)).astype(np.float32)  # shortest axis 9: levels of 9, 4, 2, 1 planes
    bigseg.save_volume(img, tmp_path / "four.ome.zarr", levels=4, progress=False)
    smallest = bigseg.open_volume(tmp_path / "four.ome.zarr", level=3)
    assert smallest.shape == (1, 2, 4)
    with pytest.raises(InputError, match="levels"):
        bigseg.save_volume(img, tmp_path / "five.ome.zarr", levels=5, progress=False)
    # a label image takes as many levels as its image has, by default
    lab = (img > 0.5).astype(np.uint8)
    bigseg.save_labels(lab, tmp_path / "four.ome.zarr", phases=["a", "b"], progress=False)
    assert bigseg.open_volume(tmp_path / "four.ome.zarr" / "labels" / "segmentation", level=3).shape == (1, 2, 4)


def test_a_label_value_one_past_the_last_phase_is_refused(tmp_path):
    lab = np.zeros((6, 7, 8), np.uint8)
    lab[5, 6, 7] = 3  # three phases name 0, 1, 2: 3 is named by none (and is no 255)
    with pytest.raises(InputError, match="the value 3"):
        bigseg.save_volume(da.from_array(lab, chunks=3), tmp_path / "l.ome.zarr", phases=["a", "b", "c"],
                           progress=False)
    assert not (tmp_path / "l.ome.zarr").exists()
    lab[5, 6, 7] = 2
    bigseg.save_volume(da.from_array(lab, chunks=3), tmp_path / "l.ome.zarr", phases=["a", "b", "c"], progress=False)


def test_info_summarises_the_coarsest_level_it_names(tmp_path, rng):
    img = rng.random((12, 14, 18)).astype(np.float32)
    img[:6] += 10.0  # the coarse level's mean and spread differ from the full resolution's
    bigseg.save_volume(img, tmp_path / "i.ome.zarr", levels=2, progress=False)
    info = bigseg.io.volume_info(tmp_path / "i.ome.zarr")
    coarse = _block_mean(img).astype(np.float32).astype(np.float64)  # level 1, as stored (float32)
    got = info["intensity"]
    assert got["from_level"] == 1 and got["sampled_voxels"] == coarse.size
    assert got["mean"] == pytest.approx(coarse.mean(), rel=1e-6)
    assert got["std"] == pytest.approx(coarse.std(), rel=1e-5)
    assert (got["min"], got["max"]) == pytest.approx((coarse.min(), coarse.max()), rel=1e-6)
    assert got["p99"] == pytest.approx(np.percentile(coarse, 99), rel=1e-6)
    # a label image with unlabelled voxels: each phase's share of the labelled ones at that level
    lab = rng.integers(0, 3, img.shape).astype(np.uint8)
    lab[:4] = 255
    bigseg.save_labels(lab, tmp_path / "i.ome.zarr", phases=["a", "b", "c"], progress=False)
    fr = bigseg.io.volume_info(tmp_path / "i.ome.zarr" / "labels" / "segmentation")["fractions"]
    small = lab[::2, ::2, ::2]
    assert fr["from_level"] == 1 and fr["sampled_voxels"] == small.size
    assert fr["unlabelled"] == pytest.approx(np.mean(small == 255))
    inside = small[small != 255]
    assert [fr["of_labelled"][k] for k in "abc"] == pytest.approx([np.mean(inside == i) for i in range(3)])


def test_another_writers_label_image_keeps_every_named_label_value(tmp_path):
    """An OME-Zarr label image without bigseg's metadata: its phases come from the
    image-label properties, one per value up to the highest (a gap named "phase<i>")."""
    import zarr

    lab = np.array([[[0, 1, 3], [3, 1, 0]]], np.uint8)
    root = zarr.open_group(str(tmp_path / "seg.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=lab.shape, dtype=lab.dtype)[:] = lab
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": a, "type": "space"} for a in "zyx"],
                                  "datasets": [{"path": "0"}]}]
    root.attrs["image-label"] = {"properties": [{"label-value": 3, "name": "active"},
                                                {"label-value": 0, "name": "pore"},
                                                {"label-value": 1, "name": "cbd"}]}
    vol = bigseg.open_volume(tmp_path / "seg.zarr")
    assert vol.attrs["phases"] == ["pore", "cbd", "phase2", "active"]
    np.testing.assert_array_equal(vol.values, lab)


def test_a_stack_of_big_endian_slices_only_reads_its_values(tmp_path, odd_volume):
    """Every slice big-endian and uncompressed (memory-mapped, not decoded): the file's byte order."""
    import tifffile

    src = tmp_path / "be"
    src.mkdir()
    for i, s in enumerate(odd_volume[:9]):
        tifffile.imwrite(src / f"s_{i}.tif", s, byteorder=">")
    back = bigseg.ingest(src, tmp_path / "be.ome.zarr", chunks=(4, 20, 30), progress=False)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back.values, odd_volume[:9])


def test_a_voxel_size_given_without_a_unit_is_in_the_sources_unit(tmp_path, odd_volume):
    vol = make_volume(odd_volume[:6], voxel_size=(0.8, 0.4, 0.4), unit="um")
    bigseg.export(vol, tmp_path / "s.h5", progress=False)
    back = bigseg.ingest(tmp_path / "s.h5", tmp_path / "a.ome.zarr", voxel_size=(2.0, 1.0, 1.0), progress=False)
    assert back.attrs["voxel_size"] == (2.0, 1.0, 1.0) and back.attrs["unit"] == "um"
    own = bigseg.ingest(tmp_path / "s.h5", tmp_path / "b.ome.zarr", unit="nm", progress=False)
    assert own.attrs["voxel_size"] == pytest.approx((800.0, 400.0, 400.0)) and own.attrs["unit"] == "nm"


def test_scans_stating_one_voxel_size_in_two_units_are_one_grid(tmp_path, odd_volume):
    a = make_volume(odd_volume[:5], voxel_size=(0.8, 0.4, 0.4), unit="um")
    b = make_volume(odd_volume[5:10], voxel_size=(800.0, 400.0, 400.0), unit="nm")
    c = make_volume(odd_volume[10:15], voxel_size=(0.8, 0.4, 0.5), unit="um")
    for name, v in (("a.h5", a), ("b.h5", b), ("c.h5", c)):
        bigseg.export(v, tmp_path / name, progress=False)
    ser = bigseg.ingest([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "s.ome.zarr", progress=False)
    assert ser.dims == ("t", "z", "y", "x")
    assert ser.attrs["voxel_size"] == pytest.approx((0.8, 0.4, 0.4)) and ser.attrs["unit"] == "um"
    np.testing.assert_array_equal(ser.values, np.stack([odd_volume[:5], odd_volume[5:10]]))
    with pytest.raises(InputError, match="voxel size"):
        bigseg.ingest([tmp_path / "a.h5", tmp_path / "c.h5"], tmp_path / "t.ome.zarr", progress=False)


def test_times_that_repeat_are_refused(tmp_path, odd_volume):
    np.save(tmp_path / "a.npy", odd_volume[:4])
    np.save(tmp_path / "b.npy", odd_volume[4:8])
    scans = [tmp_path / "a.npy", tmp_path / "b.npy"]
    for times in ([5.0, 5.0], [5.0, 1.0]):
        with pytest.raises(InputError, match="`times` to increase"):
            bigseg.ingest(scans, tmp_path / "s.ome.zarr", times=times, progress=False)
    assert not (tmp_path / "s.ome.zarr").exists()
    ser = bigseg.ingest(scans, tmp_path / "s.ome.zarr", times=[5.0, 5.5], progress=False)
    np.testing.assert_array_equal(ser.t.values, [5.0, 5.5])


def test_hdf5_series_times_are_kept_only_when_they_increase(tmp_path, odd_volume):
    import h5py

    ser = np.stack([odd_volume[:4, :10, :12], odd_volume[4:8, :10, :12]])
    for name, times, want in (("up.h5", [1.0, 3.5], [1.0, 3.5]), ("down.h5", [3.5, 1.0], [0, 1]),
                              ("same.h5", [2.0, 2.0], [0, 1])):
        with h5py.File(tmp_path / name, "w") as f:
            f.create_dataset("exchange/data", data=ser).attrs["times"] = np.asarray(times)
        back = bigseg.ingest(tmp_path / name, tmp_path / f"{name}.ome.zarr", progress=False)
        np.testing.assert_array_equal(back.t.values, want)
        np.testing.assert_array_equal(back.values, ser)


def test_an_ome_tiff_series_states_each_planes_own_time(tmp_path, odd_volume):
    """Pages in (t, z) order: every plane of time point t has DeltaT = times[t] (even z counts,
    where repeating the times per plane and tiling them differ for the first plane of each t)."""
    import xml.etree.ElementTree as ET

    import tifffile

    ser = np.stack([odd_volume[:4, :10, :12], odd_volume[4:8, :10, :12], odd_volume[8:12, :10, :12]])
    times = [0.0, 30.0, 75.0]
    vol = make_volume(da.from_array(ser, chunks=(1, 3, 10, 12)), voxel_size=(1.0, 0.5, 0.5), unit="um")
    bigseg.export(vol.assign_coords(t=times), tmp_path / "s.tif", progress=False)
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        root = ET.fromstring(tif.ome_metadata)
        np.testing.assert_array_equal(tif.asarray(), ser)
    planes = [p for p in root.iter() if p.tag.rsplit("}", 1)[-1] == "Plane"]
    assert len(planes) == 12
    for p in planes:
        assert float(p.attrib["DeltaT"]) == times[int(p.attrib.get("TheT", 0))], p.attrib
    back = bigseg.ingest(tmp_path / "s.tif", tmp_path / "s.ome.zarr", progress=False)
    np.testing.assert_array_equal(back.t.values, times)


def test_a_series_box_states_each_planes_position_in_the_scan(tmp_path, odd_volume):
    """OME-TIFF of a (t, z, y, x) box cut from scans: plane (t, z) lies at z = first + z, for
    every t (the position restarts with each time point), y and x at the box's corner."""
    import xml.etree.ElementTree as ET

    import tifffile

    np.save(tmp_path / "a.npy", odd_volume)
    np.save(tmp_path / "b.npy", odd_volume[::-1].copy())
    box = bigseg.ingest([tmp_path / "a.npy", tmp_path / "b.npy"], tmp_path / "box.ome.zarr", crop="4:9,3:20,8:40",
                        voxel_size=(50, 25, 20), progress=False)
    bigseg.export(box, tmp_path / "box.tif", progress=False)
    with tifffile.TiffFile(tmp_path / "box.tif") as tif:
        root = ET.fromstring(tif.ome_metadata)
    planes = [p.attrib for p in root.iter() if p.tag.rsplit("}", 1)[-1] == "Plane"]
    assert len(planes) == 2 * 5
    for i, p in enumerate(planes):
        t, z = divmod(i, 5)
        assert (int(p.get("TheT", 0)), int(p.get("TheZ", 0))) == (t, z)
        pos = (float(p["PositionZ"]), float(p["PositionY"]), float(p["PositionX"]))
        assert pos == pytest.approx(((4 + z) * 50.0, 3 * 25.0, 8 * 20.0)), p


def test_a_label_pyramid_says_nearest_and_an_image_pyramid_mean(tmp_path, rng):
    """OME-Zarr's multiscales "type": how a viewer may take the levels (labels are never averaged)."""
    import json

    img = rng.random((8, 9, 10)).astype(np.float32)
    bigseg.save_volume(img, tmp_path / "i.ome.zarr", levels=2, progress=False)
    bigseg.save_labels((img > 0.5).astype(np.uint8), tmp_path / "i.ome.zarr", phases=["a", "b"], progress=False)
    for path, kind in (("i.ome.zarr", "mean"), ("i.ome.zarr/labels/segmentation", "nearest")):
        meta = json.loads((tmp_path / path / "zarr.json").read_text())["attributes"]["ome"]
        assert meta["multiscales"][0]["type"] == kind, path
