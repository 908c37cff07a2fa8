"""OME-Zarr volumes: images, label images, series, pyramids, metadata from other writers."""

from __future__ import annotations

import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr

import bigseg
from bigseg.errors import InputError, OutputExistsError
from bigseg.io import make_volume, save_labels, volume_info


def test_save_open_keeps_physical_coordinates(tmp_path, odd_volume):
    vol = make_volume(da.from_array(odd_volume, chunks=(9, 20, 33)), voxel_size=(2.0, 1.5, 1.5), unit="nm")
    bigseg.save_volume(vol, tmp_path / "a.ome.zarr", chunks=(16, 16, 16), progress=False)
    back = bigseg.open_volume(tmp_path / "a.ome.zarr")
    assert isinstance(back.data, da.Array)  # lazy
    assert back.attrs["voxel_size"] == (2.0, 1.5, 1.5) and back.attrs["unit"] == "nm"
    np.testing.assert_allclose(back.z.values[:3], [0.0, 2.0, 4.0])
    np.testing.assert_allclose(back.x.values[-1], 70 * 1.5)
    np.testing.assert_array_equal(back.values, odd_volume)
    assert back.data.chunksize == (16, 16, 16)
    # a voxel size without a unit is in nm (API.md), as save_volume and synth take it; none: 1 voxel
    assert make_volume(odd_volume, voxel_size=50).attrs["unit"] == "nm"
    plain = make_volume(odd_volume)
    assert (plain.attrs["voxel_size"], plain.attrs["unit"]) == ((1.0, 1.0, 1.0), "voxel")


def test_labels_group_with_phases_and_colours(tmp_path, odd_volume):
    bigseg.save_volume(odd_volume, tmp_path / "a.ome.zarr", voxel_size=0.5, unit="um", progress=False)
    lab = (odd_volume % 3).astype(np.uint8)
    path = save_labels(lab, tmp_path / "a.ome.zarr", phases=["pore", "cbd", "active"], chunks=20, progress=False)
    assert path.endswith("labels/segmentation")
    g = zarr.open_group(str(tmp_path / "a.ome.zarr" / "labels"), mode="r")
    assert g.attrs["ome"]["labels"] == ["segmentation"]
    meta = json.loads((tmp_path / "a.ome.zarr/labels/segmentation/zarr.json").read_text())["attributes"]["ome"]
    il = meta["image-label"]
    assert [p["name"] for p in il["properties"]] == ["pore", "cbd", "active"]
    assert [c["label-value"] for c in il["colors"]] == [0, 1, 2]
    assert il["source"]["image"] == "../../"
    alone = bigseg.save_volume(lab, tmp_path / "alone.ome.zarr", phases=["pore", "cbd", "active"], progress=False)
    own = json.loads((tmp_path / "alone.ome.zarr/zarr.json").read_text())["attributes"]["ome"]["image-label"]
    assert "source" not in own and len(own["properties"]) == 3  # no image two folders up to point at
    assert bigseg.open_volume(alone).attrs["phases"] == ["pore", "cbd", "active"]
    for opened in (bigseg.open_volume(path), bigseg.open_volume(tmp_path / "a.ome.zarr", label="segmentation"),
                   bigseg.open_volume(tmp_path / "a.ome.zarr" / "labels")):
        assert opened.attrs["phases"] == ["pore", "cbd", "active"]
        assert opened.attrs["voxel_size"] == (0.5, 0.5, 0.5) and opened.attrs["unit"] == "um"
        np.testing.assert_array_equal(opened.values, lab)
    with pytest.raises(OutputExistsError):
        save_labels(lab, tmp_path / "a.ome.zarr", phases=["pore", "cbd", "active"], progress=False)
    with pytest.raises(InputError, match="shape"):
        save_labels(lab[:-1], tmp_path / "a.ome.zarr", name="other", phases=["a", "b", "c"], progress=False)
    info = volume_info(tmp_path / "a.ome.zarr")
    assert info["labels"] == ["segmentation"] and info["shape"] == [37, 53, 71]


def test_label_pyramid_is_nearest(tmp_path):
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[4:12, 4:12, 4:12] = 2
    lab[13:, :, :] = 1
    bigseg.save_volume(lab, tmp_path / "l.ome.zarr", phases=["a", "b", "c"], levels=2, progress=False)
    lvl1 = bigseg.open_volume(tmp_path / "l.ome.zarr", level=1)
    assert set(np.unique(lvl1.values)) <= {0, 1, 2}
    np.testing.assert_array_equal(lvl1.values, lab[::2, ::2, ::2])
    assert lvl1.attrs["voxel_size"] == (2.0, 2.0, 2.0)
    # a level's array opened by its own path is that level, calibrated (was 1 voxel, uncalibrated)
    for level in (0, 1):
        direct = bigseg.open_volume(tmp_path / "l.ome.zarr" / str(level))
        assert direct.attrs["voxel_size"] == (2.0 ** level,) * 3 and direct.attrs["phases"] == ["a", "b", "c"]


def test_series_t_zyx(tmp_path, rng):
    ser = rng.random((3, 10, 11, 12)).astype(np.float32)
    bigseg.save_volume(ser, tmp_path / "s.ome.zarr", voxel_size=(1, 2, 2), progress=False)
    back = bigseg.open_volume(tmp_path / "s.ome.zarr")
    assert back.dims == ("t", "z", "y", "x") and back.data.chunksize[0] == 1
    meta = json.loads((tmp_path / "s.ome.zarr/zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    assert meta["axes"][0] == {"name": "t", "type": "time"}
    assert meta["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 1.0, 2.0, 2.0]
    np.testing.assert_array_equal(back.values, ser)
    assert list(back.t.values) == [0, 1, 2]
    # irregular times (cycles, minutes...) survive the round trip, and volume_info lists them
    timed = bigseg.io.make_volume(ser).assign_coords(t=[0.0, 12.5, 40.0])
    bigseg.save_volume(timed, tmp_path / "t.ome.zarr", chunks=(5, 6, 7), progress=False)
    back = bigseg.open_volume(tmp_path / "t.ome.zarr")
    assert list(back.t.values) == [0.0, 12.5, 40.0] and back.data.chunksize == (1, 5, 6, 7)
    assert bigseg.io.volume_info(tmp_path / "t.ome.zarr", stats=False)["times"] == [0.0, 12.5, 40.0]


def test_opens_v04_ome_zarr_from_another_writer(tmp_path, odd_volume):
    """A v0.4 (zarr v2) image as other tools write it (multiscales at the top level) opens lazily."""
    root = zarr.open_group(str(tmp_path / "other.zarr"), mode="w", zarr_format=2)
    root.create_array("s0", shape=odd_volume.shape, chunks=(8, 16, 16), dtype=odd_volume.dtype)[:] = odd_volume
    root.attrs["multiscales"] = [{
        "version": "0.4", "name": "image",
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": [{"path": "s0", "coordinateTransformations": [{"type": "scale", "scale": [3.0, 1.0, 1.0]}]}],
    }]
    vol = bigseg.open_volume(tmp_path / "other.zarr")
    assert vol.attrs["voxel_size"] == (3.0, 1.0, 1.0) and vol.attrs["unit"] == "um"
    assert vol.data.chunksize == (8, 16, 16)
    np.testing.assert_array_equal(vol.values, odd_volume)


def test_opens_a_5d_tczyx_image_of_one_channel_and_time_point(tmp_path, odd_volume):
    """bioformats2raw, Fiji and ome-zarr-py write TCZYX with singleton t and c: a volume (was
    refused by every command: 'Expected a 3D or 4D volume')."""
    root = zarr.open_group(str(tmp_path / "tczyx.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=(1, 1, *odd_volume.shape), chunks=(1, 1, 8, 16, 16),
                      dtype=odd_volume.dtype)[:] = odd_volume[None, None]
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 2.0, 0.5, 0.5]}]}]}]
    vol = bigseg.open_volume(tmp_path / "tczyx.zarr")
    assert vol.dims == ("z", "y", "x") and vol.attrs["voxel_size"] == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(vol.values, odd_volume)
    two = zarr.open_group(str(tmp_path / "tczyx.zarr"), mode="a")
    two.create_array("1", shape=(2, 1, *odd_volume.shape), dtype=odd_volume.dtype)
    two.attrs["multiscales"] = [{**two.attrs["multiscales"][0], "datasets": [{"path": "1"}]}]
    assert bigseg.open_volume(tmp_path / "tczyx.zarr").dims == ("t", "z", "y", "x")  # two time points: a series
    three = zarr.open_group(str(tmp_path / "tczyx.zarr"), mode="a")
    three.create_array("2", shape=(1, 3, *odd_volume.shape), dtype=odd_volume.dtype)
    three.attrs["multiscales"] = [{**three.attrs["multiscales"][0], "datasets": [{"path": "2"}]}]
    rgb = bigseg.open_volume(tmp_path / "tczyx.zarr")
    with pytest.raises(InputError, match=r"pick one channel first, e.g. vol.isel\(c=0\)"):
        bigseg.filters.median(rgb)
    assert bigseg.filters.median(rgb.isel(c=0)).dims == ("z", "y", "x")


@pytest.mark.parametrize("times", [1, 3])
def test_ingest_picks_one_channel_of_a_multichannel_image(tmp_path, rng, times, capsys):
    """Another writer's t, c, z, y, x of several channels: ingest reads the one named by
    `channel` (was copied as a (c, z, y, x) array no command could use); without it, refused."""
    from bigseg.cli import main

    data = rng.random((times, 3, 6, 10, 12)).astype(np.float32)
    root = zarr.open_group(str(tmp_path / "rgb.zarr"), mode="w", zarr_format=2)
    root.create_array("0", shape=data.shape, chunks=(1, 1, 4, 5, 7), dtype=data.dtype)[:] = data
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 2.0, 0.5, 0.5]}]}]}]
    with pytest.raises(InputError, match=r"3 channels in .*pass channel=N for N in 0\.\.2"):
        bigseg.ingest(tmp_path / "rgb.zarr", tmp_path / "a.ome.zarr", progress=False)
    with pytest.raises(InputError, match=r"`channel` in 0\.\.2 .*Got 3"):
        bigseg.ingest(tmp_path / "rgb.zarr", tmp_path / "a.ome.zarr", channel=3, progress=False)
    assert not (tmp_path / "a.ome.zarr").exists()
    vol = bigseg.ingest(tmp_path / "rgb.zarr", tmp_path / "a.ome.zarr", channel=1, progress=False)
    want = data[:, 1] if times > 1 else data[0, 1]
    assert vol.dims == (("t",) if times > 1 else ()) + ("z", "y", "x") and vol.attrs["voxel_size"] == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(vol.values, want)
    assert main(["ingest", str(tmp_path / "rgb.zarr"), str(tmp_path / "b.ome.zarr"), "--channel", "2",
                 "--no-progress"]) == 0
    np.testing.assert_array_equal(bigseg.open_volume(tmp_path / "b.ome.zarr").values,
                                  data[:, 2] if times > 1 else data[0, 2])
    np.save(tmp_path / "plain.npy", want)
    with pytest.raises(InputError, match=r"`channel` only for an OME-Zarr source with channels"):
        bigseg.ingest(tmp_path / "plain.npy", tmp_path / "c.ome.zarr", channel=0, progress=False)


def test_save_never_modifies_input_and_overwrite_replaces_atomically(tmp_path, odd_volume):
    ref = odd_volume.copy()
    bigseg.save_volume(odd_volume, tmp_path / "a.ome.zarr", progress=False)
    np.testing.assert_array_equal(odd_volume, ref)
    # re-writing a volume from itself with overwrite works (computed before the swap)
    v = bigseg.open_volume(tmp_path / "a.ome.zarr")
    bigseg.save_volume(v + 1, tmp_path / "a.ome.zarr", overwrite=True, progress=False)
    np.testing.assert_array_equal(bigseg.open_volume(tmp_path / "a.ome.zarr").values, ref + 1)
    assert [p.name for p in tmp_path.iterdir()] == ["a.ome.zarr"]


def test_float_labels_refused(tmp_path):
    with pytest.raises(InputError, match="integer dtype"):
        bigseg.save_volume(np.zeros((4, 4, 4), np.float32), tmp_path / "l.ome.zarr", phases=["a", "b"])
    with pytest.raises(InputError, match="`phases`"):
        bigseg.save_volume(np.zeros((4, 4, 4), np.uint8), tmp_path / "l.ome.zarr", phases=["a", "a"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_ome_zarr_py_reads_what_we_write(tmp_path, odd_volume):
    """ome-zarr-py (the napari plugin's reader) sees the image, its scale and the label image."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    bigseg.save_volume(odd_volume, tmp_path / "a.ome.zarr", voxel_size=(2, 1, 1), levels=2, progress=False)
    save_labels((odd_volume % 3).astype(np.uint8), tmp_path / "a.ome.zarr", phases=["pore", "cbd", "active"], progress=False)
    nodes = list(Reader(parse_url(str(tmp_path / "a.ome.zarr")))())
    image = nodes[0]
    assert len(image.data) == 2 and tuple(image.data[0].shape) == (37, 53, 71)
    assert image.metadata["coordinateTransformations"][0][0]["scale"] == [2.0, 1.0, 1.0]
    labels = [n for n in nodes if n.load(__import__("ome_zarr.reader", fromlist=["Label"]).Label)]
    assert labels, "label image not found by ome-zarr-py"


@pytest.mark.parametrize("data", [np.arange(64, dtype=np.float64).reshape(4, 4, 4) * 1e300,
                                  np.arange(64, dtype=np.float64).reshape(4, 4, 4) * 1e-50,
                                  (2**30 + np.arange(64) * 7).reshape(4, 4, 4).astype(np.int32)], ids=["1e300", "1e-50", "2**30"])
def test_pyramid_levels_of_wide_dtypes_are_their_means(tmp_path, data):
    """A level averaged in float32 made inf of float64 1e300, 0 of 1e-50 and moved int32 2**30 + k
    by up to 64."""
    bigseg.save_volume(data, tmp_path / "a.ome.zarr", chunks=3, levels=2, progress=False)
    level1 = bigseg.open_volume(tmp_path / "a.ome.zarr", level=1).values
    ref = data.reshape(2, 2, 2, 2, 2, 2).mean(axis=(1, 3, 5), dtype=np.float64)
    ref = (np.round(ref) if data.dtype.kind == "i" else ref).astype(data.dtype)
    assert level1.dtype == data.dtype
    np.testing.assert_allclose(level1, ref, rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_pyramid_keeps_64_bit_integers_largest_values(tmp_path, dtype):
    """The float64 mean of a 64-bit integer's largest value is one past it (2**63, 2**64), which the
    cast wrapped to the smallest: the brightest voxels of level 1 became the darkest."""
    info = np.iinfo(dtype)
    data = np.full((4, 4, 6), info.max, dtype)
    data[2:] = info.min
    data[:2, :, 4:] = info.max - 2**12 + 1  # a mean float64 holds (2**63 - 2**12): as it was
    bigseg.save_volume(data, tmp_path / "a.ome.zarr", chunks=3, levels=2, progress=False)
    level1 = bigseg.open_volume(tmp_path / "a.ome.zarr", level=1).values
    assert level1.dtype == dtype
    np.testing.assert_array_equal(level1, data[::2, ::2, ::2])


def test_sparse_labels_from_annotations_whose_classes_count_from_1():
    import dask.array as da
    import xarray as xr

    from bigseg.io import sparse_labels

    ann = np.array([[[0, 1, 2, 3, 0, 255]]], np.uint8)
    np.testing.assert_array_equal(sparse_labels(ann, 0).values, [[[255, 0, 1, 2, 255, 254]]])
    np.testing.assert_array_equal(sparse_labels(ann, 2).values, [[[0, 1, 255, 2, 0, 254]]])  # any value: the rest move down
    assert sparse_labels(ann, 255) is ann
    wide = xr.DataArray(da.from_array(np.array([[[0, 4, 300, -1]]], np.int32), chunks=2), dims=("z", "y", "x"),
                        attrs={"phases": ["a", "b", "c", "d"], "voxel_size": (2.0, 2.0, 2.0), "unit": "nm"})
    out = sparse_labels(wide, 0)
    assert out.attrs["phases"] == ["a", "b", "c", "d"] and out.dtype == np.int32
    np.testing.assert_array_equal(out.values, [[[255, 3, 300, -1]]])  # beyond 0..255: left for the caller's checks
    for bad in (-1, 256, 1.5, True, "0"):
        with pytest.raises(InputError, match="`unlabelled`"):
            sparse_labels(ann, bad)
    with pytest.raises(InputError, match="integer"):
        sparse_labels(ann.astype(np.float32), 0)


def test_probabilities_keep_their_phase_names_through_a_store(tmp_path):
    import xarray as xr

    from bigseg.io import open_volume, save_volume

    p = np.random.default_rng(0).random((3, 4, 5, 6)).astype(np.float32)
    prob = xr.DataArray(p, dims=("phase", "z", "y", "x"), coords={"phase": ["pore", "cbd", "active"]})
    back = open_volume(save_volume(prob, tmp_path / "p.ome.zarr"))
    assert back.dims == ("phase", "z", "y", "x") and list(back.phase.values) == ["pore", "cbd", "active"]
    assert back.dtype == np.float16  # as API.md promises: half the disk
    np.testing.assert_array_equal(back.sel(phase="active").values, p[2].astype(np.float16))
    again = open_volume(save_volume(back, tmp_path / "q.ome.zarr"))  # and again, as it came back
    assert list(again.phase.values) == ["pore", "cbd", "active"]
    # other viewers (napari, Fiji/MoBIE) name and colour the channels from OME's "omero" block
    omero = json.loads((tmp_path / "p.ome.zarr" / "zarr.json").read_text())["attributes"]["ome"]["omero"]
    assert [c["label"] for c in omero["channels"]] == ["pore", "cbd", "active"]
    assert all(len(c["color"]) == 6 and c["window"]["max"] == 1.0 for c in omero["channels"])
    assert len({c["color"] for c in omero["channels"]}) == 3
    # NaN (no data: outside a field of view) is left out of the summary and counted (was: all nan)
    p[:, :, :2] = np.nan
    info = bigseg.io.volume_info(save_volume(xr.DataArray(p, dims=("phase", "z", "y", "x")), tmp_path / "n.ome.zarr"))
    inside = p[:, :, 2:].astype(np.float16).astype(np.float64)
    assert info["intensity"]["not_finite"] == 3 * 4 * 2 * 6 and info["intensity"]["sampled_voxels"] == p.size
    assert info["intensity"]["mean"] == pytest.approx(inside.mean()) and info["intensity"]["max"] == inside.max()
    plain = open_volume(save_volume(xr.DataArray(p, dims=("c", "z", "y", "x")), tmp_path / "c.ome.zarr"))
    assert plain.dims == ("c", "z", "y", "x") and plain.dtype == np.float32  # channels without names stay OME-Zarr's c


def test_info_of_a_label_image_gives_each_phase_share(tmp_path, rng):
    lab = rng.integers(0, 3, (12, 14, 16)).astype(np.uint8)
    lab[:2] = 255  # outside a field of view
    img = bigseg.save_volume(rng.random(lab.shape).astype(np.float32), tmp_path / "i.ome.zarr", progress=False)
    bigseg.save_labels(lab, img, phases=["pore", "cbd", "active"], progress=False)
    info = bigseg.io.volume_info(tmp_path / "i.ome.zarr" / "labels" / "segmentation")
    assert "intensity" not in info and info["fractions"]["sampled_voxels"] == lab.size
    # of the labelled voxels, as measure.volume_fractions (and the porosity a reader takes from it)
    want = bigseg.measure.volume_fractions(lab, phases=["pore", "cbd", "active"])
    assert list(info["fractions"]["of_labelled"].values()) == pytest.approx(want.values.tolist())
    assert info["fractions"]["unlabelled"] == pytest.approx(2 / 12)
    assert "intensity" in bigseg.io.volume_info(tmp_path / "i.ome.zarr")  # the image keeps its grey-value summary


@pytest.mark.parametrize("dtype, other", [(np.int32, -1), (np.uint64, 2**63 + 1), (np.int64, 2**40)])
def test_info_of_a_label_image_counts_values_no_phase_names_as_unlabelled(tmp_path, dtype, other):
    """A label image edited by another tool (-1 for "none", a uint64 id past 2**63, an id of 2**40):
    bincount raised ValueError (bigseg info: a traceback) or asked for terabytes."""
    lab = np.zeros((4, 5, 6), dtype)
    lab[1], lab[2] = 1, 2
    img = bigseg.save_volume(np.zeros(lab.shape, np.float32), tmp_path / "i.ome.zarr", progress=False)
    bigseg.save_labels(lab, img, phases=["pore", "cbd", "active"], progress=False)
    zarr.open_array(str(tmp_path / "i.ome.zarr" / "labels" / "segmentation" / "0"), mode="r+")[0, 0, :3] = other
    info = bigseg.io.volume_info(tmp_path / "i.ome.zarr" / "labels" / "segmentation")
    assert info["fractions"]["sampled_voxels"] == lab.size
    assert info["fractions"]["unlabelled"] == pytest.approx(3 / lab.size)
    assert list(info["fractions"]["of_labelled"].values()) == pytest.approx([57 / 117, 30 / 117, 30 / 117])


@pytest.mark.parametrize("resume_key", [None, "k"])
def test_a_full_disk_is_said_as_such_and_leaves_nothing_that_looks_finished(tmp_path, rng, monkeypatch, resume_key):
    import errno

    from bigseg.errors import OutputNotWritableError
    from bigseg.io import _omezarr

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_omezarr, "_write_multiscale", full)
    with pytest.raises(OutputNotWritableError, match=r"room to write `path`.*No space left on device.*"
                                                     + ("resumes" if resume_key else "Nothing that looks finished")):
        bigseg.save_volume(rng.random((4, 5, 6)).astype(np.float32), tmp_path / "v.ome.zarr", progress=False,
                           resume_key=resume_key)
    assert not (tmp_path / "v.ome.zarr").exists()


def test_phases_that_do_not_name_every_label_value_are_refused_and_nothing_is_left(tmp_path):
    from bigseg.errors import InputError
    from bigseg.io import open_volume, save_labels, save_volume

    lab = np.zeros((6, 7, 8), np.uint8)
    lab[3:, 2:, 5:] = 2
    lab[0, 0, 0] = 255  # unlabelled: always allowed
    for i in range(2):
        img = save_volume(lab.astype(np.float32), tmp_path / f"img{i}.ome.zarr", progress=False)
        dest = tmp_path / f"bad{i}.ome.zarr" if i == 0 else Path(img) / "labels" / "bad"
        with pytest.raises(InputError, match=r"`phases` to name every label value \(0..1; 255: unlabelled\).*value 2"):
            if i == 0:
                save_volume(lab, dest, phases=["a", "b"], chunks=(2, 3, 4), progress=False)
            else:
                save_labels(lab, img, phases=["a", "b"], name=dest.name, progress=False)
        assert not dest.exists() and not list(dest.parent.glob(f".{dest.name}*"))
    ok = open_volume(save_volume(lab, tmp_path / "ok.ome.zarr", phases=["a", "b", "c"], progress=False))
    np.testing.assert_array_equal(ok.values, lab)
    with pytest.raises(InputError, match=r"value -[12] "):
        save_volume(lab.astype(np.int8) - 1, tmp_path / "neg.ome.zarr", phases=["a", "b", "c"], progress=False)
    inst = np.arange(6 * 7 * 8, dtype=np.uint16).reshape(lab.shape)  # instance labels: any values
    save_labels(inst, tmp_path / "ok.ome.zarr", name="particles", instances=True, progress=False)


def test_a_series_time_unit_survives_the_round_trip(tmp_path, rng):
    # the t coordinate's units (minutes between scans) were dropped by save_volume: the pipeline's
    # tables, figures and report could not say them
    ser = make_volume(rng.random((3, 6, 7, 8)).astype(np.float32)).assign_coords(
        t=("t", [0.0, 30.0, 90.0], {"units": "min"}))
    bigseg.save_volume(ser, tmp_path / "t.ome.zarr", progress=False)
    back = bigseg.open_volume(tmp_path / "t.ome.zarr")
    assert list(back.t.values) == [0.0, 30.0, 90.0] and back.t.attrs["units"] == "min"
    assert volume_info(tmp_path / "t.ome.zarr", stats=False)["time_unit"] == "min"


def test_opens_another_writers_series_with_its_time_step(tmp_path, rng):
    # OME-Zarr states a series' times as the t axis' scale, translation and unit: they read as 0, 1, 2
    data = rng.random((3, 4, 5, 6)).astype(np.float32)
    root = zarr.open_group(str(tmp_path / "other.zarr"), mode="w", zarr_format=3)
    root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=(1, 4, 5, 6))[...] = data  # data=: zarr >= 3.1
    axes = [{"name": "t", "type": "time", "unit": "minute"}] + [{"name": a, "type": "space", "unit": "micrometer"}
                                                                for a in "zyx"]
    transforms = [{"type": "scale", "scale": [30.0, 0.5, 0.5, 0.5]},
                  {"type": "translation", "translation": [10.0, 0, 0, 0]}]
    root.attrs["ome"] = {"version": "0.5", "multiscales": [
        {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": transforms}]}]}
    vol = bigseg.open_volume(tmp_path / "other.zarr")
    assert list(vol.t.values) == [10.0, 40.0, 70.0] and vol.t.attrs["units"] == "minute"
    assert vol.attrs["voxel_size"] == (0.5, 0.5, 0.5)


def test_a_mask_computed_from_labels_is_stored_as_a_mask(tmp_path):
    """``labels == 2`` keeps the labels' phase names (xarray keeps attrs): save_volume and
    save_labels refused it ("integer dtype for a label volume", and naming `data` for
    save_labels' `labels`). It is stored as uint8 labels 0/1 named as the measurements name a
    mask's; the input is left as it was."""
    labels = bigseg.synth.electrode((12, 16, 20), seed=3, chunks=(5, 16, 7))
    mask = labels == 2
    assert mask.attrs["phases"] == ["pore", "cbd", "active"]
    bigseg.save_volume(mask, tmp_path / "m.ome.zarr", progress=False)
    got = bigseg.open_volume(tmp_path / "m.ome.zarr")
    assert got.dtype == np.uint8 and got.attrs["phases"] == ["background", "foreground"]
    np.testing.assert_array_equal(got.values, (labels.values == 2).astype(np.uint8))
    assert mask.dtype == np.bool_ and mask.attrs["phases"] == ["pore", "cbd", "active"]  # not modified

    bigseg.save_volume(bigseg.synth.xct(labels, seed=3), tmp_path / "i.ome.zarr", progress=False)
    bigseg.save_labels(mask.values, tmp_path / "i.ome.zarr", name="plain", progress=False)  # a NumPy mask, no names
    bigseg.save_labels(mask, tmp_path / "i.ome.zarr", name="named", phases=["rest", "nmc"], progress=False)
    plain = bigseg.open_volume(tmp_path / "i.ome.zarr", label="plain")
    named = bigseg.open_volume(tmp_path / "i.ome.zarr", label="named")
    assert plain.attrs["phases"] == ["background", "foreground"] and named.attrs["phases"] == ["rest", "nmc"]
    np.testing.assert_array_equal(named.values, plain.values)
    assert bigseg.measure.volume_fractions(named).sel(phase="nmc") == pytest.approx((labels.values == 2).mean())


def test_grey_values_with_phase_names_are_refused_with_the_way_out(tmp_path):
    labels = bigseg.synth.electrode((8, 8, 8), seed=1, chunks=4)
    with pytest.raises(InputError, match=r"`data` to have an integer dtype.*attrs\['phases'\] \['pore', 'cbd', "
                                         r"'active'\].*astype\('uint8'\).*data.attrs.pop\('phases'\)"):
        bigseg.save_volume(labels * 0.5, tmp_path / "g.ome.zarr", progress=False)
    assert not (tmp_path / "g.ome.zarr").exists()
    bigseg.save_volume(bigseg.synth.xct(labels, seed=1), tmp_path / "i.ome.zarr", progress=False)
    with pytest.raises(InputError, match=r"`labels` to have an integer dtype") as err:
        bigseg.save_labels(labels.astype(np.float32), tmp_path / "i.ome.zarr", progress=False)
    assert "pop" not in str(err.value)  # a label image holds integers: no grey-value way out offered
    assert not (tmp_path / "i.ome.zarr" / "labels" / "segmentation").exists()


def test_an_exported_mask_does_not_carry_the_labels_phase_names(tmp_path):
    """An HDF5 of ``labels == 2`` said its values were pore, cbd and active (read back, 1 was
    "cbd"); it holds uint8 labels named background, foreground now, as OME-Zarr stores them."""
    from bigseg.io import open_source

    labels = bigseg.synth.electrode((10, 12, 14), seed=2, chunks=6, voxel_size=50, unit="nm")
    bigseg.export(labels == 2, tmp_path / "m.h5", progress=False)
    back = open_source(tmp_path / "m.h5")
    assert back.dtype == np.uint8 and back.attrs["phases"] == ["background", "foreground"]
    np.testing.assert_array_equal(back.values, labels.values == 2)
    plain = np.zeros((4, 5, 6), bool)
    bigseg.export(plain, tmp_path / "p.npy", progress=False)  # no names: written as it is
    assert np.load(tmp_path / "p.npy").dtype == np.bool_


def _other_writer(path: Path, data: np.ndarray, multiscale: dict, *, zarr_format: int = 2) -> Path:
    """An OME-Zarr image as another writer makes it: one level "0" and ``multiscale``."""
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    root.create_array("0", shape=data.shape, chunks=data.shape, dtype=data.dtype)[:] = data
    if zarr_format == 2:
        root.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        root.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    return path


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_other_writers_voxel_size_in_the_multiscale_or_in_several_units(tmp_path, odd_volume, zarr_format):
    """OME-Zarr applies a multiscale's own coordinateTransformations after each level's (was
    ignored: voxel size 1 and no origin); spatial axes stated in different units are expressed
    in the unit of x (was z's unit for all: y and x 1000 times too large)."""
    data = odd_volume[:6, :8, :10]
    space = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    outer = _other_writer(tmp_path / "outer.zarr", data, {
        "axes": space, "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 1.0, 1.0]}, {"type": "translation", "translation": [1.0, 2.0, 3.0]}]}],
        "coordinateTransformations": [{"type": "scale", "scale": [2.0, 0.5, 0.25]}]}, zarr_format=zarr_format)
    vol = bigseg.open_volume(outer)
    assert vol.attrs["voxel_size"] == (2.0, 0.5, 0.25) and vol.attrs["unit"] == "um"
    assert (float(vol.z[0]), float(vol.y[0]), float(vol.x[0])) == (2.0, 1.0, 0.75)  # translated, then scaled
    mixed = [{"name": "z", "type": "space", "unit": "micrometer"},
             *({"name": a, "type": "space", "unit": "nanometer"} for a in "yx")]
    mixed_path = _other_writer(tmp_path / "mixed.zarr", data, {"axes": mixed, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.5, 500.0, 500.0]},
                                                    {"type": "translation", "translation": [3.0, 0.0, 0.0]}]}]},
        zarr_format=zarr_format)
    vol = bigseg.open_volume(mixed_path)
    assert vol.attrs["voxel_size"] == (1500.0, 500.0, 500.0) and vol.attrs["unit"] == "nm"
    assert float(vol.z[0]) == 3000.0
    odd = [{"name": "z", "type": "space", "unit": "parsec"}, *mixed[1:]]
    odd_path = _other_writer(tmp_path / "odd.zarr", data, {"axes": odd, "datasets": [{"path": "0"}]},
                             zarr_format=zarr_format)
    with pytest.warns(UserWarning, match=r"z in 'parsec'.*ignored; pass the voxel size"):
        assert bigseg.open_volume(odd_path).attrs["unit"] == "voxel"
    with pytest.warns(UserWarning, match=r"z in 'parsec'"):
        given = bigseg.ingest(odd_path, tmp_path / "given.ome.zarr", voxel_size=40, unit="nm", progress=False)
    assert given.attrs["voxel_size"] == (40.0, 40.0, 40.0) and given.attrs["unit"] == "nm"


def test_opens_a_bioformats2raw_store(tmp_path, odd_volume):
    """bioformats2raw (the usual converter of microscope and CT files) puts its image at 0/ under
    a root stating only "bioformats2raw.layout" (was refused as "an unfinished write")."""
    data = odd_volume[:6, :8, :10]
    root = zarr.open_group(str(tmp_path / "b2r.zarr"), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    _other_writer(tmp_path / "b2r.zarr" / "0", data[None, None], {"axes": axes, "datasets": [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 0.9, 0.3, 0.3]}]}]})
    zarr.open_group(str(tmp_path / "b2r.zarr" / "OME"), mode="w", zarr_format=2).attrs["series"] = ["0"]
    vol = bigseg.open_volume(tmp_path / "b2r.zarr")
    assert vol.dims == ("z", "y", "x") and vol.attrs["voxel_size"] == (0.9, 0.3, 0.3)
    np.testing.assert_array_equal(vol.values, data)
    out = bigseg.ingest(tmp_path / "b2r.zarr", tmp_path / "in.ome.zarr", progress=False)
    assert out.attrs["voxel_size"] == (0.9, 0.3, 0.3) and out.attrs["unit"] == "um"
    labels = make_volume((data % 3).astype(np.uint8), phases=["pore", "cbd", "active"])
    written = save_labels(labels, tmp_path / "b2r.zarr", name="seg", progress=False)  # into its image
    assert Path(written) == tmp_path / "b2r.zarr" / "0" / "labels" / "seg"
    np.testing.assert_array_equal(bigseg.open_volume(tmp_path / "b2r.zarr", label="seg").values, data % 3)
    zarr.open_group(str(tmp_path / "b2r.zarr" / "OME"), mode="a").attrs["series"] = ["0", "1"]
    with pytest.raises(bigseg.errors.VolumeFormatError, match=r"with 2 \(0, 1\): open one of them"):
        bigseg.open_volume(tmp_path / "b2r.zarr")


def test_a_series_times_on_the_ome_zarr_time_axis(tmp_path):
    """Other OME-Zarr readers (napari, ome-zarr-py) see evenly spaced times as the t axis' scale
    and translation, in its unit (were step 1 from 0 with no unit: bigseg's own metadata only);
    times OME-Zarr cannot state (uneven, "cycle") keep step 1 and no unit."""
    data = np.zeros((3, 4, 4, 4), np.uint8)
    vol = make_volume(data, voxel_size=50).assign_coords(t=[10.0, 40.0, 70.0])
    vol.coords["t"].attrs["units"] = "min"
    path = tmp_path / "s.ome.zarr"
    bigseg.save_volume(vol, path, levels=2, progress=False)
    ms = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    assert ms["axes"][0] == {"name": "t", "type": "time", "unit": "minute"}
    for level, ds in enumerate(ms["datasets"]):
        scale, shift = (tr[k] for tr, k in zip(ds["coordinateTransformations"], ("scale", "translation")))
        assert scale[0] == 30.0 and shift[0] == 10.0, level
    back = bigseg.open_volume(path)
    assert list(back.t.values) == [10.0, 40.0, 70.0] and back.t.attrs["units"] == "min"
    other = zarr.open_group(str(path), mode="a")  # as another reader sees it: no bigseg metadata
    del other.attrs["bigseg"]
    seen = bigseg.open_volume(path)
    assert list(seen.t.values) == [10.0, 40.0, 70.0] and seen.t.attrs["units"] == "minute"
    uneven = vol.assign_coords(t=[0.0, 1.0, 5.0])
    uneven.coords["t"].attrs["units"] = "cycle"
    bigseg.save_volume(uneven, tmp_path / "u.ome.zarr", progress=False)
    ms = json.loads((tmp_path / "u.ome.zarr" / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    assert ms["axes"][0] == {"name": "t", "type": "time"}
    assert ms["datasets"][0]["coordinateTransformations"] == [{"type": "scale", "scale": [1.0, 50.0, 50.0, 50.0]}]
    assert list(bigseg.open_volume(tmp_path / "u.ome.zarr").t.values) == [0.0, 1.0, 5.0]
    save_labels(make_volume(data, phases=["pore"]), path, name="seg", progress=False)  # the image's times
    ms = json.loads((path / "labels" / "seg" / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    assert ms["axes"][0]["unit"] == "minute" and ms["datasets"][0]["coordinateTransformations"][0]["scale"][0] == 30.0
    assert list(bigseg.open_volume(path, label="seg").t.values) == [10.0, 40.0, 70.0]


def test_labels_written_into_an_ome_zarr_v04_image_stay_v04(tmp_path, odd_volume):
    """A label image written into another writer's OME-Zarr v0.4 image (zarr v2) is v0.4 on zarr
    v2 and joins that writer's label list (a zarr v3 `labels` group was made beside its
    `.zgroup`: zarr and OME-Zarr readers then saw only bigseg's labels, v0.4 readers none of them)."""
    from bigseg.io._omezarr import remove_label

    data = odd_volume[:6, :8, :10]
    path = _other_writer(tmp_path / "v04.zarr", data, {
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.5, 0.5]}]}]})
    theirs = zarr.open_group(str(path / "labels"), mode="w", zarr_format=2)
    theirs.attrs["labels"] = ["theirs"]
    _other_writer(path / "labels" / "theirs", np.zeros_like(data, np.uint8), {
        "axes": [{"name": a, "type": "space"} for a in "zyx"], "datasets": [{"path": "0"}]})
    labels = make_volume((data % 3).astype(np.uint8), phases=["pore", "cbd", "active"])
    save_labels(labels, path, name="ours", progress=False)
    assert not (path / "labels" / "zarr.json").exists() and not (path / "labels" / "ours" / "zarr.json").exists()
    assert json.loads((path / "labels" / ".zattrs").read_text())["labels"] == ["theirs", "ours"]
    meta = json.loads((path / "labels" / "ours" / ".zattrs").read_text())
    assert meta["multiscales"][0]["version"] == "0.4" and meta["image-label"]["version"] == "0.4"
    assert meta["image-label"]["properties"][2] == {"label-value": 2, "name": "active"}
    back = bigseg.open_volume(path, label="ours")
    assert back.attrs["phases"] == ["pore", "cbd", "active"] and back.attrs["voxel_size"] == (1.0, 0.5, 0.5)
    np.testing.assert_array_equal(back.values, data % 3)
    save_labels(labels, path, name="ours", overwrite=True, progress=False)  # replaced, in the same format
    assert not (path / "labels" / "zarr.json").exists()
    assert remove_label(path, "ours")
    assert json.loads((path / "labels" / ".zattrs").read_text())["labels"] == ["theirs"]


def test_a_label_list_a_kill_left_short_or_stale_is_read_as_what_is_there_and_mended(tmp_path, monkeypatch):
    """A process killed after a label image was moved into place but before the labels group
    listed it (or after one was removed but before it was unlisted) left labels/b unlisted
    (bigseg and OME viewers missed it, a `B` beside it was allowed) and `gone` listed (opening the
    labels group failed on it): read as what is on disk, and the list mended by the next write."""
    from bigseg.io import _omezarr
    from bigseg.io._omezarr import label_names, remove_label

    path = tmp_path / "s.ome.zarr"
    bigseg.save_volume(np.zeros((4, 6, 8), np.float32), path, progress=False)
    labels = make_volume(np.arange(4 * 6 * 8).reshape(4, 6, 8) % 3, phases=["pore", "cbd", "active"]).astype(np.uint8)
    for name in ("gone", "a"):
        save_labels(labels, path, name=name, progress=False)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the step after the move into place never ran

    with monkeypatch.context() as m:
        m.setattr(_omezarr, "_set_ome", killed)
        with pytest.raises(KeyboardInterrupt):
            save_labels(labels, path, name="b", progress=False)
        with pytest.raises(KeyboardInterrupt):
            remove_label(path, "gone")
    listed = lambda: json.loads((path / "labels" / "zarr.json").read_text())["attributes"]["ome"]["labels"]  # noqa: E731
    assert listed() == ["gone", "a"]  # the state the kills left
    assert label_names(path / "labels") == ["a", "b"] and volume_info(path, stats=False)["labels"] == ["a", "b"]
    np.testing.assert_array_equal(bigseg.open_volume(path / "labels").values, labels.values)  # `a`, not `gone`
    with pytest.raises(InputError, match="label image 'b' in more than case"):
        save_labels(labels, path, name="B", progress=False)
    save_labels(labels, path, name="c", progress=False)
    assert listed() == ["a", "b", "c"]  # what viewers read


def test_only_complete_label_images_are_read_as_unlisted_ones_and_in_order_of_name(tmp_path):
    """Of what a labels group does not list, only a complete label image counts, by name: not a
    NAME_probabilities image (no "image-label"), nor metadata saying "image-label" without its levels,
    nor a hidden folder (a label image moved aside while another replaced it, a scratch)."""
    import shutil

    from bigseg.io._omezarr import is_label_image, label_names

    path = tmp_path / "s.ome.zarr"
    bigseg.save_volume(np.zeros((4, 6, 8), np.float32), path, progress=False)
    labels = make_volume(np.arange(4 * 6 * 8).reshape(4, 6, 8) % 3, phases=["pore", "cbd", "active"]).astype(np.uint8)
    save_labels(labels, path, name="seg", progress=False)
    ldir = path / "labels"
    for name in ("f", "b", "e", "a", "d", "c"):  # unlisted, made out of order (a kill before each was listed)
        shutil.copytree(ldir / "seg", ldir / name)
    shutil.copytree(ldir / "seg", ldir / ".seg.123-0a1b2c3d.partial.old")  # moved aside, complete
    bigseg.save_volume(np.zeros((4, 6, 8), np.float32), ldir / "seg_probabilities", progress=False)
    zarr.open_group(str(ldir / "half"), mode="w").attrs["ome"] = {"image-label": {}}
    assert not is_label_image(ldir / "seg_probabilities") and not is_label_image(ldir / "half")
    assert is_label_image(ldir / "a")
    assert label_names(ldir) == ["seg", "a", "b", "c", "d", "e", "f"]


def test_info_of_an_image_of_text_describes_it_without_a_traceback(tmp_path):
    # QA (hostile inputs): a store received holding strings (or complex numbers): `bigseg info` died in a
    # traceback converting them to floats for the grey-value statistics (ingest and segment refuse it by name)
    import shutil

    bigseg.save_volume(np.zeros((4, 4, 4), np.uint8), tmp_path / "s.ome.zarr")
    shutil.rmtree(tmp_path / "s.ome.zarr" / "0")
    zarr.create_array(str(tmp_path / "s.ome.zarr" / "0"), shape=(4, 4, 4), chunks=(4, 4, 4), dtype="str",
                      dimension_names=["z", "y", "x"])
    info = volume_info(tmp_path / "s.ome.zarr")
    assert info["shape"] == [4, 4, 4] and "intensity" not in info


def test_uneven_times_in_a_unit_leave_the_time_axis_without_one(tmp_path):
    """Uneven times OME-Zarr cannot state are stored as steps 0, 1, 2, ... with no unit (were
    "minute": napari and ome-zarr-py showed scans 1 minute apart that were 5 and 25 apart);
    bigseg's own metadata keeps the times and their unit."""
    vol = make_volume(np.zeros((3, 4, 4, 4), np.uint8), voxel_size=50).assign_coords(t=[0.0, 5.0, 30.0])
    vol.coords["t"].attrs["units"] = "min"
    path = tmp_path / "u.ome.zarr"
    bigseg.save_volume(vol, path, progress=False)
    ms = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
    assert ms["axes"][0] == {"name": "t", "type": "time"}
    assert ms["datasets"][0]["coordinateTransformations"] == [{"type": "scale", "scale": [1.0, 50.0, 50.0, 50.0]}]
    back = bigseg.open_volume(path)
    assert list(back.t.values) == [0.0, 5.0, 30.0] and back.t.attrs["units"] == "min"


@pytest.mark.parametrize("t", [[np.nan], [0.0, np.inf, 2.0]], ids=["nan", "inf"])
def test_times_that_are_no_numbers_are_refused_not_written_as_nan_in_zarr_json(tmp_path, t):
    """A NaN or infinite time was written into zarr.json as NaN / Infinity: no JSON (a web
    viewer's JSON.parse, neuroglancer's, refuses the whole store) and no OME-Zarr translation."""
    vol = make_volume(np.zeros((len(t), 4, 4, 4), np.uint8)).assign_coords(t=t)
    with pytest.raises(InputError, match="finite times"):
        bigseg.save_volume(vol, tmp_path / "s.ome.zarr", progress=False)
    assert not (tmp_path / "s.ome.zarr").exists()
    placed = make_volume(np.zeros((4, 4, 4), np.uint8)).assign_coords(z=np.full(4, np.nan))
    with pytest.warns(UserWarning, match="not evenly spaced"), pytest.raises(InputError, match="finite numbers"):
        bigseg.save_volume(placed, tmp_path / "p.ome.zarr", progress=False)
    assert not (tmp_path / "p.ome.zarr").exists()


def test_labels_in_an_ome_zarr_v04_image_use_slash_separated_chunk_keys(tmp_path, odd_volume):
    """OME-Zarr v0.4 allows only "/" as its arrays' dimension separator (chunk keys 0/1/2); the
    label images bigseg wrote into another writer's v0.4 image used zarr v2's default ".", unlike
    the image beside them."""
    data = odd_volume[:6, :8, :10]
    path = _other_writer(tmp_path / "v04.zarr", data, {
        "axes": [{"name": a, "type": "space"} for a in "zyx"], "datasets": [{"path": "0"}]})
    save_labels(make_volume((data % 3).astype(np.uint8), phases=["pore", "cbd", "active"]), path, levels=2,
                chunks=4, progress=False)
    for level in ("0", "1"):
        meta = json.loads((path / "labels" / "segmentation" / level / ".zarray").read_text())
        assert meta["dimension_separator"] == "/", level
    assert (path / "labels" / "segmentation" / "0" / "1" / "1" / "2").is_file()
    np.testing.assert_array_equal(bigseg.open_volume(path, label="segmentation").values, data % 3)


def test_chunks_bigseg_chooses_hold_at_most_64_mib(tmp_path, monkeypatch):
    """Without `chunks` an array's own blocks were written as they were, up to 1 GiB (a NumPy
    array's dask "auto" chunks: 128 MiB, 511³ uint8): a viewer decoded all of one to show a slice.
    Now each is halved along its longest edge until it fits MAX_CHOSEN_CHUNK (64 MiB); given
    chunks are kept."""
    from bigseg.io import _omezarr

    monkeypatch.setattr(_omezarr, "MAX_CHOSEN_CHUNK", 2048)  # (as 64 MiB is to 128 MiB blocks)
    data = np.arange(16 * 12 * 20, dtype=np.int16).reshape(16, 12, 20)
    bigseg.save_volume(da.from_array(data, chunks=-1), tmp_path / "own.ome.zarr", progress=False)
    back = bigseg.open_volume(tmp_path / "own.ome.zarr")
    assert tuple(max(c) for c in back.data.chunks) == (8, 12, 10)  # 7680 bytes: x, then z halved
    np.testing.assert_array_equal(back.values, data)
    bigseg.save_volume(data, tmp_path / "given.ome.zarr", chunks=(16, 12, 20), progress=False)
    assert tuple(max(c) for c in bigseg.open_volume(tmp_path / "given.ome.zarr").data.chunks) == (16, 12, 20)


def test_float_pyramid_levels_do_not_hang_on_the_chunking(tmp_path):
    """A float32 level's 2x2x2 means were summed in float32 in the block's memory layout: one
    chunking's level 1 differed from another's by an ulp (6e-5 at grey values near 1000)."""
    x = (np.random.default_rng(5).random((9, 13, 10)) * 1000).astype(np.float32)
    levels = []
    for i, chunks in enumerate([-1, 1, ((8, 1), (13,), (9, 1))]):
        path = tmp_path / f"{i}.ome.zarr"
        bigseg.save_volume(da.from_array(x, chunks=chunks), path, levels=3, progress=False)
        levels.append([bigseg.open_volume(path, level=k).values for k in range(3)])
    for other in levels[1:]:
        for a, b in zip(levels[0], other):
            np.testing.assert_array_equal(a, b)
    whole = x[:8, :12, :10].astype(np.float64).reshape(4, 2, 6, 2, 5, 2).mean((1, 3, 5)).astype(np.float32)
    np.testing.assert_array_equal(levels[0][1], whole)
