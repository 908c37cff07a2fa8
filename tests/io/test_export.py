"""`bigseg.export`: TIFF slices / BigTIFF / HDF5 / .npy, slab by slab, read back by `ingest`."""

from __future__ import annotations

import warnings

import dask.array as da
import h5py
import numpy as np
import pytest
import tifffile

import bigseg
from bigseg.cli import main
from bigseg.errors import InputError, OutputExistsError
from bigseg.io import _export, make_volume

VS = (0.8, 0.35, 0.3)


def _vol(arr, chunks=(10, 17, 30), unit="um", **attrs):
    return make_volume(da.from_array(arr, chunks=chunks), voxel_size=VS, unit=unit, **attrs)


@pytest.mark.parametrize("dest", ["slices", "v.tif", "v.h5", "v.npy"])
def test_round_trip_through_ingest(tmp_path, odd_volume, monkeypatch, dest):
    monkeypatch.setattr(_export, "SLAB_BYTES", 4 * 53 * 71 * 2)  # 4 planes: chunk rows cut in slabs
    before = odd_volume.copy()
    out = bigseg.export(_vol(odd_volume), tmp_path / dest, progress=False)
    assert out == str(tmp_path / dest)
    np.testing.assert_array_equal(odd_volume, before)  # input untouched
    back = bigseg.ingest(tmp_path / dest, tmp_path / "back.ome.zarr", progress=False)
    np.testing.assert_array_equal(back.values, odd_volume)
    assert back.dtype == odd_volume.dtype
    if dest != "v.npy":  # .npy holds no voxel size
        assert back.attrs["voxel_size"] == pytest.approx(VS) and back.attrs["unit"] == "um"
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_slices_are_named_in_order_with_imagej_calibration(tmp_path, odd_volume):
    bigseg.export(_vol(odd_volume, unit="nm"), tmp_path / "seg", progress=False)
    files = sorted(p.name for p in (tmp_path / "seg").iterdir())
    assert files[0] == "seg_00000.tif" and files[-1] == "seg_00036.tif" and len(files) == 37
    with tifffile.TiffFile(tmp_path / "seg" / "seg_00012.tif") as tif:
        assert tif.imagej_metadata["spacing"] == pytest.approx(0.8) and tif.imagej_metadata["unit"] == "nm"
        np.testing.assert_array_equal(tif.asarray(), odd_volume[12])


def test_series_and_labels(tmp_path, odd_volume):
    series = np.stack([odd_volume[:, :20, :30], odd_volume[:, 20:40, 30:60]])
    vol = make_volume(da.from_array(series, chunks=(1, 9, 20, 30)), voxel_size=VS, unit="nm")
    for name in ("s.tif", "s.h5", "s.npy"):
        bigseg.export(vol, tmp_path / name, progress=False)
        back = bigseg.ingest(tmp_path / name, tmp_path / f"{name}.ome.zarr", progress=False)
        assert back.dims == ("t", "z", "y", "x"), name
        np.testing.assert_array_equal(back.values, series)
    timed = vol.assign_coords(t=[0.0, 45.0])  # HDF5 keeps the times and the voxel size in its unit
    bigseg.export(timed, tmp_path / "timed.h5", progress=False)
    back = bigseg.ingest(tmp_path / "timed.h5", tmp_path / "timed.ome.zarr", progress=False)
    np.testing.assert_array_equal(back.t.values, [0.0, 45.0])
    assert back.attrs["unit"] == "nm" and back.attrs["voxel_size"] == pytest.approx(VS)
    # OME-TIFF keeps them as each plane's DeltaT (Fiji / Bio-Formats read them as time stamps)
    bigseg.export(timed, tmp_path / "timed.tif", progress=False)
    with tifffile.TiffFile(tmp_path / "timed.tif") as tif:
        xml = tif.ome_metadata
    assert xml.count('DeltaT="45.0"') == series.shape[1] and 'TheZ="0" TheT="1"' in xml
    back = bigseg.ingest(tmp_path / "timed.tif", tmp_path / "timed_tif.ome.zarr", progress=False)
    np.testing.assert_array_equal(back.t.values, [0.0, 45.0])
    np.testing.assert_array_equal(back.values, series)
    assert "units" not in back.t.attrs  # no unit stated: none read (OME would say seconds)
    # the times' unit too (it was dropped): HDF5 `time_unit`, OME-TIFF DeltaTUnit where OME has one and
    # bigseg's MapAnnotation for any (cycles, which OME has no symbol for, were dropped)
    minutes = vol.assign_coords(t=("t", [0.0, 45.0], {"units": "min"}))
    cycles = vol.assign_coords(t=("t", [1.0, 2.0], {"units": "cycle"}))
    for src, name, want in ((minutes, "m.h5", "min"), (minutes, "m.tif", "min"), (cycles, "c.h5", "cycle"),
                            (cycles, "c.tif", "cycle")):
        bigseg.export(src, tmp_path / name, progress=False)
        back = bigseg.ingest(tmp_path / name, tmp_path / f"{name}.ome.zarr", progress=False)
        assert back.t.attrs.get("units") == want, name
        assert bigseg.open_volume(tmp_path / f"{name}.ome.zarr").t.attrs.get("units") == want, name
    with tifffile.TiffFile(tmp_path / "m.tif") as tif:
        assert 'DeltaTUnit="min"' in tif.ome_metadata
    with pytest.raises(InputError, match="series of shape .*isel"):
        bigseg.export(vol, tmp_path / "folder", progress=False)
    labels = make_volume(da.from_array((odd_volume % 3).astype(np.uint8), chunks=16), voxel_size=VS, unit="nm",
                         phases=["pore", "cbd", "active"])
    bigseg.export(labels, tmp_path / "l.h5", progress=False)
    with h5py.File(tmp_path / "l.h5") as f:
        attrs = dict(f["exchange/data"].attrs)
    assert list(attrs["phases"]) == ["pore", "cbd", "active"]
    assert attrs["element_size_um"] == pytest.approx([0.0008, 0.00035, 0.0003])


def test_bad_destinations_write_nothing(tmp_path, odd_volume):
    vol = _vol(odd_volume)
    (tmp_path / "taken.tif").write_bytes(b"x")
    with pytest.raises(OutputExistsError, match="`dest`"):
        bigseg.export(vol, tmp_path / "taken.tif", progress=False)
    assert (tmp_path / "taken.tif").read_bytes() == b"x"
    with pytest.raises(InputError, match="`dest`.*'.raw'"):
        bigseg.export(vol, tmp_path / "v.raw", progress=False)
    with pytest.raises(InputError, match="save_volume"):
        bigseg.export(vol, tmp_path / "v.zarr", progress=False)
    with pytest.raises(InputError, match="`format`"):
        bigseg.export(vol, tmp_path / "v.out", format="png", progress=False)
    with pytest.raises(InputError, match=r"`format` to agree with the suffix .*\(.npy: npy\). Got 'hdf5'"):
        bigseg.export(vol, tmp_path / "v.npy", format="hdf5", progress=False)  # was HDF5 in a file named .npy
    assert not (tmp_path / "v.npy").exists()

    def boom(block):
        if block.shape[0] and block[0, 0, 0] >= 20000:  # a later slab fails
            raise RuntimeError("disk on fire")
        return block

    failing = make_volume(da.from_array(odd_volume, chunks=(10, 53, 71)).map_blocks(boom), voxel_size=VS, unit="um")
    for name in ("f.tif", "f.h5", "f_slices"):
        with pytest.raises(RuntimeError, match="disk on fire"):
            bigseg.export(failing, tmp_path / name, progress=False)
        assert not (tmp_path / name).exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]
    # overwrite replaces a complete file
    bigseg.export(vol, tmp_path / "taken.tif", overwrite=True, progress=False)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "taken.tif"), odd_volume)


def test_uncalibratable_slices_warn(tmp_path, odd_volume):
    with pytest.warns(UserWarning, match="dtype int32 cannot carry the ImageJ calibration"):
        bigseg.export(_vol(odd_volume.astype(np.int32)), tmp_path / "i32", progress=False)
    for name in ("plain.tif", "plain.h5"):  # the HDF5 said nothing, and reads back as uncalibrated
        with pytest.warns(UserWarning, match=f"no physical voxel size .*{name} is written without one"):
            bigseg.export(odd_volume, tmp_path / name, progress=False)
    with warnings.catch_warnings():  # a .npy never holds one (a plain array asked for): nothing said
        warnings.simplefilter("error")
        bigseg.export(odd_volume, tmp_path / "plain.npy", progress=False)


def test_cli_export_label_image(tmp_path, odd_volume, capsys):
    image = tmp_path / "scan.ome.zarr"
    lab = (odd_volume % 3).astype(np.uint8)
    bigseg.save_volume(_vol(odd_volume), image, progress=False)
    bigseg.save_labels(lab, image, phases=["pore", "cbd", "active"], progress=False)
    assert main(["export", str(image), str(tmp_path / "seg.tif"), "--label", "segmentation", "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "seg.tif"), lab)
    assert main(["export", str(image), str(tmp_path / "seg.tif")]) == 2
    assert "exists" in capsys.readouterr().err
    # one step of a series (a folder of slices holds one volume): --step
    series = tmp_path / "series.ome.zarr"
    bigseg.save_volume(make_volume(da.from_array(np.stack([odd_volume, odd_volume + 1])), voxel_size=VS, unit="nm"),
                       series, progress=False)
    assert main(["export", str(series), str(tmp_path / "all"), "--no-progress"]) == 2
    assert "one step with --step T" in capsys.readouterr().err
    assert main(["export", str(series), str(tmp_path / "last"), "--step", "-1", "--no-progress"]) == 0
    np.testing.assert_array_equal(bigseg.ingest(tmp_path / "last", tmp_path / "l.ome.zarr", progress=False).values,
                                  odd_volume + 1)
    assert main(["export", str(image), str(tmp_path / "x.npy"), "--step", "0"]) == 2
    assert "Got 0 for one volume" in capsys.readouterr().err


def test_a_box_cut_from_a_scan_keeps_its_place_through_hdf5(tmp_path, odd_volume):
    """Was: an ingest of the exported HDF5 put the box back at the origin (centroids and profiles
    no longer in the scan's frame)."""
    from bigseg.io import origin_of

    np.save(tmp_path / "scan.npy", odd_volume)
    box = bigseg.ingest(tmp_path / "scan.npy", tmp_path / "box.ome.zarr", crop="4:20,:,8:40", voxel_size=(50, 25, 25),
                        progress=False)
    assert origin_of(box) == (200.0, 0.0, 200.0)
    bigseg.export(box, tmp_path / "box.h5", progress=False)
    back = bigseg.ingest(tmp_path / "box.h5", tmp_path / "back.ome.zarr", progress=False)
    assert origin_of(back) == (200.0, 0.0, 200.0) and back.attrs["unit"] == "nm"
    um = bigseg.ingest(tmp_path / "box.h5", tmp_path / "um.ome.zarr", unit="um", progress=False)
    assert origin_of(um) == pytest.approx((0.2, 0.0, 0.2))  # in the unit asked for
    np.testing.assert_array_equal(back.values, odd_volume[4:20, :, 8:40])
    whole = bigseg.export(make_volume(odd_volume, voxel_size=50), tmp_path / "whole.h5", progress=False)
    assert "origin_voxels" not in h5py.File(whole, "r")["exchange/data"].attrs


@pytest.mark.parametrize("fmt", ["box.tif", "slices"])
def test_a_box_cut_from_a_scan_keeps_its_place_through_tiff(tmp_path, odd_volume, fmt):
    """OME-TIFF: each plane's PositionZ/Y/X in the scan; TIFF slices: ImageJ's origins (pixels,
    each slice its own z), as Fiji reads them. Were lost (the box back at the scan's corner)."""
    import tifffile

    from bigseg.io import origin_of
    from bigseg.io._ingest import source_info

    np.save(tmp_path / "scan.npy", odd_volume)
    box = bigseg.ingest(tmp_path / "scan.npy", tmp_path / "box.ome.zarr", crop="4:20,:,8:40", voxel_size=(50, 25, 25),
                        progress=False)
    out = bigseg.export(box, tmp_path / fmt, progress=False)
    assert source_info(out)["origin"] == pytest.approx([200.0, 0.0, 200.0])  # `bigseg info` says it
    back = bigseg.ingest(out, tmp_path / "back.ome.zarr", progress=False)
    assert origin_of(back) == pytest.approx((200.0, 0.0, 200.0)) and back.attrs["voxel_size"] == (50.0, 25.0, 25.0)
    np.testing.assert_array_equal(back.values, odd_volume[4:20, :, 8:40])
    um = bigseg.ingest(out, tmp_path / "um.ome.zarr", unit="um", progress=False)
    assert origin_of(um) == pytest.approx((0.2, 0.0, 0.2))  # in the unit asked for
    if fmt == "slices":  # slice k of the box is slice 4 + k of the scan, alone too
        with tifffile.TiffFile(sorted((tmp_path / fmt).iterdir())[3]) as tif:
            md = tif.imagej_metadata
        assert (md["zorigin"], md["xorigin"], "yorigin" in md) == (-7.0, -8.0, False)
    whole = bigseg.export(make_volume(odd_volume, voxel_size=50), tmp_path / ("whole" + fmt), progress=False)
    again = bigseg.ingest(whole, tmp_path / "whole.ome.zarr", progress=False)
    assert origin_of(again) == (0.0, 0.0, 0.0) and "origin" not in source_info(whole)


def test_the_origin_fiji_states_is_read(tmp_path, odd_volume):
    """An ImageJ stack saved by Fiji with an origin (Image > Properties): calibrated position =
    (pixel - origin) x pixel size."""
    import tifffile

    from bigseg.io import origin_of

    tifffile.imwrite(tmp_path / "fiji.tif", odd_volume[:6], imagej=True, resolution=(2.0, 2.0),
                     metadata={"spacing": 1.0, "unit": "micron", "xorigin": -10, "zorigin": -3})
    vol = bigseg.ingest(tmp_path / "fiji.tif", tmp_path / "f.ome.zarr", progress=False)
    assert origin_of(vol) == pytest.approx((3.0, 0.0, 5.0)) and vol.attrs["unit"] == "um"


def test_probabilities_export_with_their_phase_names(tmp_path):
    # (phase, z, y, x) as segment --probabilities stores them (float16): CZYX TIFF with channel
    # names, HDF5 with dims and names, .npy phase first; slices and ingest refuse them by name
    rng = np.random.default_rng(3)
    p = rng.random((3, 5, 6, 7)).astype(np.float32)
    p /= p.sum(0)
    import xarray as xr

    prob = xr.DataArray(p, dims=("phase", "z", "y", "x"), coords={"phase": ["pore", "cbd", "active"]})
    stored = bigseg.open_volume(bigseg.save_volume(prob, tmp_path / "p.ome.zarr", voxel_size=50, progress=False))
    assert stored.dims[0] == "phase" and stored.dtype == np.float16
    tif = bigseg.export(stored, tmp_path / "p.tif", progress=False)
    with tifffile.TiffFile(tif) as t:
        assert t.series[0].axes == "CZYX" and t.asarray().dtype == np.float32  # OME-TIFF holds no float16
        np.testing.assert_array_equal(t.asarray(), stored.values.astype(np.float32))
        assert all(f'Name="{n}"' in t.ome_metadata for n in ("pore", "cbd", "active"))
        assert 'PhysicalSizeX="50.0"' in t.ome_metadata
    h5 = bigseg.export(stored, tmp_path / "p.h5", progress=False)
    with h5py.File(h5) as f:
        d = f["exchange/data"]
        np.testing.assert_array_equal(d[()], stored.values)
        assert d.attrs["dims"] == "phase,z,y,x" and list(d.attrs["channel_names"]) == ["pore", "cbd", "active"]
    np.testing.assert_array_equal(np.load(bigseg.export(stored, tmp_path / "p.npy", progress=False)), stored.values)
    with pytest.raises(InputError, match=r"one .tif \(axes CZYX\), .h5 or .npy for probabilities"):
        bigseg.export(stored, tmp_path / "slices", progress=False)
    with pytest.raises(InputError, match="probabilities .phase, z, y, x. as bigseg export writes them"):
        bigseg.ingest(h5, tmp_path / "back.ome.zarr", progress=False)
    with pytest.raises(InputError, match=r"with 3 channels \(axes CZYX"):  # read as one tall volume
        bigseg.ingest(tif, tmp_path / "back.ome.zarr", progress=False)
    assert not (tmp_path / "slices").exists() and not (tmp_path / "back.ome.zarr").exists()


def test_int64_to_ome_tiff_is_refused_and_a_failed_write_keeps_its_own_error(tmp_path, monkeypatch):
    big = make_volume((np.arange(4 * 5 * 6).reshape(4, 5, 6) * 2**40).astype(np.int64), voxel_size=50, unit="nm")
    with pytest.raises(InputError, match=r"dtype an OME-TIFF holds.*Got int64: export to .h5, .npy or TIFF slices"):
        bigseg.export(big, tmp_path / "b.tif", progress=False)  # was tifffile's OmeXmlError
    assert not list(tmp_path.iterdir())
    bigseg.export(big, tmp_path / "b.h5", progress=False)
    np.testing.assert_array_equal(bigseg.ingest(tmp_path / "b.h5", tmp_path / "b.ome.zarr", progress=False).values,
                                  big.values)

    def broken(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(_export, "_write_npy", lambda *a: (_ for _ in ()).throw(RuntimeError("disk full")))
    from bigseg.runtime import _files  # (the hidden write and its cleanup: _files.replacing)

    monkeypatch.setattr(_files, "remove", broken)  # the cleanup failing too (a read-only mount)
    with pytest.raises(RuntimeError, match="disk full"):  # was the cleanup's OSError
        bigseg.export(big, tmp_path / "c.npy", progress=False)


def test_an_existing_folder_where_nothing_may_be_written_is_refused_before_work(tmp_path, monkeypatch):
    import errno
    import tempfile

    from bigseg.errors import OutputNotWritableError

    vol = make_volume(np.zeros((4, 5, 6), np.uint8), voxel_size=50, unit="nm")

    def read_only(*args, **kwargs):  # what a read-only mount answers (root passes permission bits)
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    for dest in ("x.h5", "x.tif", "slices"):
        with pytest.raises(OutputNotWritableError, match=r"`dest` somewhere this process may write.*Read-only"):
            bigseg.export(vol, tmp_path / dest, progress=False)  # was the cleanup's own OSError, mid-write
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("t_unit", ["cycle", "minute", "min"])
def test_a_series_time_unit_comes_back_from_an_ome_tiff_as_given(tmp_path, t_unit):
    """OME has no symbol for cycles (nor spells "minute"): the .tif kept the times but read back
    without a unit, or as "min"; HDF5 kept it."""
    import xarray as xr

    series = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    vol = make_volume(da.from_array(series, chunks=(1, 3, 4, 5)), voxel_size=VS, unit="um")
    vol = vol.assign_coords(t=xr.DataArray([1.0, 5.0], dims="t", attrs={"units": t_unit}))
    for name in ("s.tif", "s.h5"):
        bigseg.export(vol, tmp_path / name, progress=False)
        back = bigseg.ingest(tmp_path / name, tmp_path / f"{name}.ome.zarr", progress=False)
        assert list(back.t.values) == [1.0, 5.0] and back.t.attrs.get("units") == t_unit, name
        np.testing.assert_array_equal(back.values, series)
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:  # still what OME readers take as the unit, where OME has one
        assert ('DeltaTUnit="min"' in tif.ome_metadata) == (t_unit != "cycle")


@pytest.mark.parametrize("zs", [3, 1])
def test_a_series_of_one_time_step_comes_back_from_an_ome_tiff_as_a_series(tmp_path, zs):
    """OME states a T axis of length 1 for any volume: the .tif of a one-step series read back as a
    3D volume, its time lost (HDF5 kept both)."""
    import xarray as xr

    series = np.arange(zs * 4 * 5, dtype=np.uint16).reshape(1, zs, 4, 5)
    vol = make_volume(series, voxel_size=VS, unit="um").assign_coords(t=xr.DataArray([7.0], dims="t", attrs={"units": "min"}))
    for name in ("s.tif", "s.h5"):
        bigseg.export(vol, tmp_path / name, progress=False)
        back = bigseg.ingest(tmp_path / name, tmp_path / f"{name}.ome.zarr", progress=False)
        assert back.dims == ("t", "z", "y", "x") and list(back.t.values) == [7.0], name
        assert back.t.attrs.get("units") == "min", name
        np.testing.assert_array_equal(back.values, series)
    bigseg.export(vol.isel(t=0), tmp_path / "v.tif", progress=False)  # one volume stays one
    assert bigseg.ingest(tmp_path / "v.tif", tmp_path / "v.ome.zarr", progress=False).dims == ("z", "y", "x")


def test_a_series_probabilities_export_as_tczyx_with_their_phases_and_times(tmp_path):
    """A series' probabilities, stored (t, c, z, y, x) and opened as (t, phase, z, y, x), were
    refused by every format ("Expected `data` to be a 3D or 4D ... volume")."""
    import xarray as xr

    p = np.random.default_rng(0).random((2, 3, 4, 5, 6)).astype(np.float32)
    prob = xr.DataArray(da.from_array(p, chunks=(1, 3, 2, 5, 6)), dims=("t", "phase", "z", "y", "x"),
                        coords={"phase": ["pore", "cbd", "active"], "t": ("t", [0.0, 30.0], {"units": "min"})},
                        attrs={"voxel_size": VS, "unit": "um"})
    bigseg.export(prob, tmp_path / "p.tif", progress=False)
    with tifffile.TiffFile(tmp_path / "p.tif") as tif:
        assert tif.series[0].axes == "TCZYX" and 'Name="cbd"' in tif.ome_metadata and 'DeltaT="30.0"' in tif.ome_metadata
        np.testing.assert_array_equal(tif.series[0].asarray(), p)
    bigseg.export(prob, tmp_path / "p.h5", progress=False)
    with h5py.File(tmp_path / "p.h5", "r") as f:
        d = f["exchange/data"]
        np.testing.assert_array_equal(d[...], p)
        assert d.attrs["dims"] == "t,phase,z,y,x" and list(d.attrs["channel_names"]) == ["pore", "cbd", "active"]
        assert list(d.attrs["times"]) == [0.0, 30.0] and d.attrs["time_unit"] == "min"
    bigseg.export(prob.transpose("phase", "t", "z", "y", "x"), tmp_path / "p.npy", progress=False)  # any order in
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), p)


def test_info_on_an_exported_series_says_its_axes_and_times(tmp_path, capsys):
    """`bigseg info` on a series file said its shape only: not which axis is time, nor the times
    ingest would keep."""
    import xarray as xr

    series = np.zeros((2, 3, 4, 5), np.uint8)
    vol = make_volume(da.from_array(series), voxel_size=VS, unit="um")
    vol = vol.assign_coords(t=xr.DataArray([0.0, 30.0], dims="t", attrs={"units": "min"}))
    for name in ("s.tif", "s.h5"):
        bigseg.export(vol, tmp_path / name, progress=False)
        assert main(["info", str(tmp_path / name)]) == 0
        said = capsys.readouterr().out
        assert "shape       2 x 3 x 4 x 5  (t, z, y, x)\n" in said and "times       0, 30 min\n" in said, name


def test_a_series_timed_with_durations_or_dates_is_stored_with_its_times_or_refused(tmp_path):
    """Scans stacked at pandas durations (`xr.concat(scans, dim=pd.Index(pd.to_timedelta(...),
    name="t"))`) lost their times: save_volume stored steps 0, 1 and export wrote microseconds
    without a unit (90 min read back as 5.4e9); dates were stored the same ways, and text
    (`["pristine", "cycled"]`) crashed export in NumPy ("could not convert string to float").
    Durations are stored in seconds; dates and text are refused, saying how to make numbers."""
    import pandas as pd
    import xarray as xr

    series = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    vol = make_volume(da.from_array(series, chunks=(1, 3, 4, 5)), voxel_size=VS, unit="um")
    timed = vol.assign_coords(t=pd.to_timedelta([0, 90], unit="min"))
    bigseg.save_volume(timed, tmp_path / "s.ome.zarr", progress=False)
    back = bigseg.open_volume(tmp_path / "s.ome.zarr")
    assert list(back.t.values) == [0.0, 5400.0] and back.t.attrs.get("units") == "s"
    for name in ("s.tif", "s.h5"):
        bigseg.export(timed, tmp_path / name, progress=False)
        back = bigseg.ingest(tmp_path / name, tmp_path / f"{name}.ome.zarr", progress=False)
        assert list(back.t.values) == [0.0, 5400.0] and back.t.attrs.get("units") == "s", name
        np.testing.assert_array_equal(back.values, series)
    dated = vol.assign_coords(t=pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:30"]))
    named = vol.assign_coords(t=xr.DataArray(["pristine", "cycled"], dims="t"))
    for data, fix in ((dated, r"data\.assign_coords\(t=data\.t - data\.t\[0\]\)"), (named, r"data\.drop_vars\('t'\)")):
        with pytest.raises(InputError, match=r"Expected `data`'s t coordinate to hold times as numbers.*" + fix):
            bigseg.save_volume(data, tmp_path / "x.ome.zarr", progress=False)
        with pytest.raises(InputError, match=r"Expected `data`'s t coordinate to hold times as numbers.*" + fix):
            bigseg.export(data, tmp_path / "x.h5", progress=False)
    assert not (tmp_path / "x.ome.zarr").exists() and not (tmp_path / "x.h5").exists()
    fixed = dated.assign_coords(t=dated.t - dated.t[0])  # the fix the message gives
    bigseg.save_volume(fixed, tmp_path / "d.ome.zarr", progress=False)
    assert list(bigseg.open_volume(tmp_path / "d.ome.zarr").t.values) == [0.0, 5400.0]


@pytest.mark.parametrize("suffix, sized", [(".h5", True), (".tif", True), ("", True), ("", False)])
def test_label_phase_names_come_back_through_ingest_and_info(tmp_path, capsys, suffix, sized):
    """Labels named void / binder / nmc exported to HDF5, OME-TIFF or TIFF slices (""; with a voxel
    size ImageJ's, else plain) came back from ingest named pore / cbd / active (HDF5 kept the names,
    ingest dropped them; the TIFFs had none), so a measure of the ingested labels, or a --truth from
    the file, read them by the wrong names."""
    lab = bigseg.synth.electrode((6, 10, 12), seed=1, **({"voxel_size": 50, "unit": "nm"} if sized else {}))
    lab.attrs["phases"] = ["void", "binder", "nmc"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`data` has no physical voxel size")  # (not sized: said)
        bigseg.export(lab, tmp_path / f"seg{suffix}", progress=False)
    vol = bigseg.ingest(tmp_path / f"seg{suffix}", tmp_path / "seg.ome.zarr", progress=False)
    assert vol.attrs["phases"] == ["void", "binder", "nmc"]
    np.testing.assert_array_equal(vol.values, lab.values)
    assert bigseg.io.open_source(tmp_path / f"seg{suffix}").attrs["phases"] == ["void", "binder", "nmc"]
    fr = bigseg.measure.volume_fractions(bigseg.open_volume(tmp_path / "seg.ome.zarr"))
    assert list(fr.phase.values) == ["void", "binder", "nmc"]
    assert main(["info", str(tmp_path / f"seg{suffix}")]) == 0
    assert "phases      void, binder, nmc" in capsys.readouterr().out
    grey = bigseg.synth.xct(lab, seed=1)  # grey values state no phases
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`data` has no physical voxel size")
        bigseg.export(grey, tmp_path / f"grey{suffix}", progress=False)
    assert "phases" not in bigseg.ingest(tmp_path / f"grey{suffix}", tmp_path / "grey.ome.zarr", progress=False).attrs


def test_one_phase_of_stored_probabilities_goes_to_slices_fiji_opens(tmp_path):
    # as the refusal of probabilities as slices says: data.sel(phase=NAME), float16 as stored; ImageJ
    # opens no half-float TIFF: float32 slices with the calibration, as the .tif holds them
    p = np.random.default_rng(4).random((2, 4, 5, 6)).astype(np.float32)
    import xarray as xr

    prob = xr.DataArray(p, dims=("phase", "z", "y", "x"), coords={"phase": ["pore", "solid"]})
    stored = bigseg.open_volume(bigseg.save_volume(prob, tmp_path / "p.ome.zarr", voxel_size=(2, 1, 1), unit="um",
                                                   progress=False))
    one = stored.sel(phase="solid")
    assert one.dtype == np.float16
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "cannot carry the ImageJ calibration"
        bigseg.export(one, tmp_path / "solid", progress=False)
    with tifffile.TiffFile(tmp_path / "solid" / "solid_00001.tif") as tif:
        assert tif.pages[0].dtype == np.float32
        assert tif.imagej_metadata["spacing"] == 2.0 and tif.imagej_metadata["unit"] == "micron"
        np.testing.assert_array_equal(tif.asarray(), one.values[1].astype(np.float32))


@pytest.mark.parametrize("dest", ["slices", "v.tif", "v.h5", "v.npy", "Probe [2]", "v [2].tif"])
def test_the_hidden_file_a_killed_export_left_is_removed_by_the_next(tmp_path, odd_volume, dest):
    # a killed export (SIGKILL, a job's time limit) leaves its hidden partial file or folder, as
    # large as what it wrote: the next export of that destination removes it, not another's
    # (also of a name with brackets, which a glob reads as a set of characters: was kept)
    stale = tmp_path / f".{dest}.partial-0123abcd"
    (stale.mkdir() if dest == "slices" else stale.write_bytes(b"half"))
    other = tmp_path / ".w.tif.partial-0123abcd"
    other.write_bytes(b"another output's")
    bigseg.export(_vol(odd_volume), tmp_path / dest, progress=False)
    assert not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([dest, other.name])


def test_the_ome_tiff_states_the_pixel_size_to_plain_tiff_readers_too(tmp_path, odd_volume):
    # ParaView's, MATLAB's and Avizo's TIFF readers take the pixel size from the resolution tags,
    # not from the OME-XML: pixels per cm there, as ingest still reads the OME sizes
    out = bigseg.export(_vol(odd_volume[:4]), tmp_path / "v.tif", progress=False)
    with tifffile.TiffFile(out) as tif:
        page = tif.pages[0]
        assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        x, y = (n / d for n, d in (page.tags["XResolution"].value, page.tags["YResolution"].value))
        assert 1e4 / x == pytest.approx(VS[2]) and 1e4 / y == pytest.approx(VS[1])  # µm
    back = bigseg.ingest(out, tmp_path / "back.ome.zarr", progress=False)
    assert back.attrs["voxel_size"] == VS and back.attrs["unit"] == "um"
