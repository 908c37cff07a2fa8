"""Ingest round trips for every format, and bad input rejected before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import warnings
from contextlib import nullcontext

import dask.array as da
import dask.config as dask_config
import h5py
import numpy as np
import pytest
import tifffile
import zarr

import bigseg
from bigseg.errors import InputError, OutputExistsError, SourceNotFoundError, UncalibratedWarning, VolumeFormatError

CHUNKS = (10, 17, 30)


def _tiff_folder(path, vol, compress=False):
    path.mkdir()
    for i, s in enumerate(vol):  # names sort naturally, not lexically: s_2 before s_10
        tifffile.imwrite(path / f"s_{i}.tif", s, compression="zlib" if compress else None)
    return path


def _check(vol_da, ref, voxel=(1.0, 1.0, 1.0)):
    assert vol_da.dims == ("z", "y", "x")
    assert vol_da.dtype == ref.dtype
    assert tuple(max(c) for c in vol_da.data.chunks) == CHUNKS
    np.testing.assert_array_equal(vol_da.values, ref)
    assert vol_da.attrs["voxel_size"] == voxel


@pytest.mark.parametrize("compress", [False, True], ids=["raw-tiff", "zlib-tiff"])
def test_tiff_folder_round_trip(tmp_path, odd_volume, compress):
    src = _tiff_folder(tmp_path / "slices", odd_volume, compress)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in src.iterdir())
    out = bigseg.ingest(src, tmp_path / "v.ome.zarr", chunks=CHUNKS, voxel_size=(2.0, 0.5, 0.5), progress=False)
    _check(out, odd_volume, (2.0, 0.5, 0.5))
    assert sorted((p.name, p.stat().st_mtime_ns) for p in src.iterdir()) == before  # input untouched


def test_a_folder_of_slices_copied_from_a_mac_reads_without_its_hidden_companions(tmp_path, odd_volume):
    """macOS copying to exFAT, SMB or NFS writes ``._s_0.tif`` (an AppleDouble file, no TIFF)
    beside each slice: the folder could not be read ("not a TIFF file")."""
    import struct

    src = _tiff_folder(tmp_path / "slices", odd_volume)
    for i in range(len(odd_volume)):
        (src / f"._s_{i}.tif").write_bytes(struct.pack(">II", 0x00051607, 0x00020000) + bytes(4088))
    _check(bigseg.ingest(src, tmp_path / "v.ome.zarr", chunks=CHUNKS, progress=False), odd_volume)


def test_a_gap_in_the_slice_numbers_is_said(tmp_path, odd_volume):
    src = _tiff_folder(tmp_path / "slices", odd_volume)
    for i in (4, 5, 6):
        (src / f"s_{i}.tif").unlink()  # a slice or three lost in a copy
    with pytest.warns(UserWarning, match="numbered in steps of 1 but jump from 3 to 7"):
        out = bigseg.ingest(src, tmp_path / "v.ome.zarr", progress=False)
    assert out.shape[0] == odd_volume.shape[0] - 3
    every_other = tmp_path / "every_other"
    every_other.mkdir()
    for i in range(0, 10, 2):  # a stack saved every other slice: a constant step, no gap
        tifffile.imwrite(every_other / f"img_{i:03d}.tif", odd_volume[i])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=UncalibratedWarning)  # (a stack stating no voxel size: said)
        bigseg.ingest(every_other, tmp_path / "e.ome.zarr", progress=False)


def test_tiff_glob_and_multipage(tmp_path, odd_volume):
    src = _tiff_folder(tmp_path / "slices", odd_volume)
    _check(bigseg.ingest(str(src / "s_*.tif"), tmp_path / "g.ome.zarr", chunks=CHUNKS, progress=False), odd_volume)
    tifffile.imwrite(tmp_path / "stack.tif", odd_volume, bigtiff=True)
    _check(bigseg.ingest(tmp_path / "stack.tif", tmp_path / "m.ome.zarr", chunks=CHUNKS, progress=False), odd_volume)
    tifffile.imwrite(tmp_path / "stackz.tif", odd_volume, compression="zlib")
    _check(bigseg.ingest(tmp_path / "stackz.tif", tmp_path / "mz.ome.zarr", chunks=CHUNKS, progress=False), odd_volume)


@pytest.mark.parametrize("compress", [False, True], ids=["raw-tiff", "zlib-tiff"])
def test_a_preview_page_before_the_planes_is_skipped(tmp_path, odd_volume, compress):
    """Some writers put a reduced-resolution preview (a thumbnail, NewSubfileType 1) before the
    planes: it is not the first plane (it was refused as a page of another shape)."""
    comp = "zlib" if compress else None
    with tifffile.TiffWriter(tmp_path / "stack.tif") as w:
        w.write(odd_volume[0, ::4, ::4], subfiletype=1, compression=comp)
        w.write(odd_volume, compression=comp, contiguous=True)
    assert len(tifffile.TiffFile(tmp_path / "stack.tif").pages) == odd_volume.shape[0] + 1
    _check(bigseg.ingest(tmp_path / "stack.tif", tmp_path / "m.ome.zarr", chunks=CHUNKS, progress=False), odd_volume)
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, plane in enumerate(odd_volume):  # each slice file with its own preview
        with tifffile.TiffWriter(folder / f"s_{i}.tif") as w:
            w.write(plane[::4, ::4], subfiletype=1, compression=comp)
            w.write(plane, compression=comp)
    _check(bigseg.ingest(folder, tmp_path / "f.ome.zarr", chunks=CHUNKS, progress=False), odd_volume)
    with tifffile.TiffWriter(tmp_path / "two.tif") as w:  # a reduced page after the planes is still refused
        w.write(odd_volume, compression=comp, contiguous=True)
        w.write(odd_volume[0, ::4, ::4], subfiletype=1, compression=comp)
    with pytest.raises(VolumeFormatError, match="page 37 has shape"):
        bigseg.ingest(tmp_path / "two.tif", tmp_path / "t.ome.zarr", progress=False)


def test_hdf5_data_exchange_and_custom_dataset(tmp_path, odd_volume):
    with h5py.File(tmp_path / "scan.h5", "w") as f:
        f.create_dataset("/exchange/data", data=odd_volume, chunks=(5, 20, 20))
        f.create_dataset("/other/recon", data=odd_volume[::-1])
    _check(bigseg.ingest(tmp_path / "scan.h5", tmp_path / "a.ome.zarr", chunks=CHUNKS, progress=False), odd_volume)
    _check(bigseg.ingest(tmp_path / "scan.h5", tmp_path / "b.ome.zarr", dataset="/other/recon", chunks=CHUNKS, progress=False),
           odd_volume[::-1])
    # no /exchange/data: the file's only volume (a NeXus layout), else the volumes listed with their shapes
    with h5py.File(tmp_path / "scan.nxs", "w") as f:
        f.create_dataset("/entry/data/data", data=odd_volume)
        f.create_dataset("/entry/instrument/angles", data=np.arange(5.0))
    _check(bigseg.ingest(tmp_path / "scan.nxs", tmp_path / "c.ome.zarr", chunks=CHUNKS, progress=False), odd_volume)
    with h5py.File(tmp_path / "scan.nxs", "a") as f:
        f.create_dataset("/entry/data/dark", data=odd_volume[:2])
    with pytest.raises(VolumeFormatError, match=r"only 3D/4D dataset\). Datasets present: /entry/data/dark "
                                                r"\(2, 53, 71\), /entry/data/data \(37, 53, 71\)"):
        bigseg.ingest(tmp_path / "scan.nxs", tmp_path / "d.ome.zarr", progress=False)
    with pytest.raises(VolumeFormatError, match="Expected `dataset` '/nope'"):
        bigseg.ingest(tmp_path / "scan.nxs", tmp_path / "d.ome.zarr", dataset="/nope", progress=False)


@pytest.mark.parametrize("dtype", [">u2", "<u2", "<f4"])
def test_raw_with_endianness(tmp_path, odd_volume, dtype):
    ref = odd_volume.astype(dtype)
    (tmp_path / "scan.raw").write_bytes(b"HDR!" + ref.tobytes())
    out = bigseg.ingest(tmp_path / "scan.raw", tmp_path / "r.ome.zarr", shape=ref.shape, dtype=dtype, offset=4,
                        chunks=CHUNKS, progress=False)
    assert out.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(out.values, ref)


def test_raw_offset_and_byte_order_checked_before_any_work(tmp_path, odd_volume):
    ref = odd_volume.astype(">u2")
    (tmp_path / "scan.raw").write_bytes(ref.tobytes())
    with pytest.raises(InputError, match="`offset` to be a non-negative integer. Got -5"):  # was an OverflowError
        bigseg.ingest(tmp_path / "scan.raw", tmp_path / "r.ome.zarr", shape=ref.shape, dtype=">u2", offset=-5,
                      progress=False)
    assert not list(tmp_path.glob("*r.ome.zarr*"))  # nothing left, not even a hidden partial write
    # a multi-byte dtype without a byte order is read in this machine's: said, with how to say which
    with pytest.warns(UserWarning, match=r"'u2' states no byte order.*'>u2' \(big\)"):
        out = bigseg.ingest(tmp_path / "scan.raw", tmp_path / "n.ome.zarr", shape=ref.shape, dtype="u2",
                            progress=False)
    np.testing.assert_array_equal(out.values, np.frombuffer(ref.tobytes(), "<u2").reshape(ref.shape))


def test_npy_and_zarr(tmp_path, odd_volume):
    np.save(tmp_path / "v.npy", odd_volume)
    _check(bigseg.ingest(tmp_path / "v.npy", tmp_path / "n.ome.zarr", chunks=CHUNKS, progress=False), odd_volume)
    z = zarr.create_array(str(tmp_path / "plain.zarr"), shape=odd_volume.shape, chunks=(8, 8, 8), dtype=odd_volume.dtype)
    z[:] = odd_volume
    _check(bigseg.ingest(tmp_path / "plain.zarr", tmp_path / "z.ome.zarr", chunks=CHUNKS, progress=False), odd_volume)
    # an OME-Zarr written by bigseg keeps its voxel size when re-ingested with new chunks
    bigseg.save_volume(odd_volume, tmp_path / "o.ome.zarr", voxel_size=3, progress=False)
    _check(bigseg.ingest(tmp_path / "o.ome.zarr", tmp_path / "o2.ome.zarr", chunks=CHUNKS, progress=False), odd_volume, (3.0,) * 3)


def test_an_ome_zarr_source_recalibrated_moves_its_coordinates_too(tmp_path, odd_volume):
    # --voxel-size or --unit on an OME-Zarr source: the coordinates follow the attrs (they kept
    # the old spacing, and every later use warned that the two disagree); a box keeps its place
    src = bigseg.save_volume(odd_volume, tmp_path / "o.ome.zarr", voxel_size=50, progress=False)
    box = bigseg.save_volume(bigseg.open_volume(src).isel(z=slice(3, 9), x=slice(2, None)), tmp_path / "box.ome.zarr",
                             progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coordinates-disagree warning (or any other) fails
        out = bigseg.ingest(src, tmp_path / "a.ome.zarr", voxel_size=100, progress=False)
        um = bigseg.ingest(box, tmp_path / "b.ome.zarr", unit="um", progress=False)
        again = bigseg.open_volume(tmp_path / "a.ome.zarr")
    assert out.attrs["voxel_size"] == (100.0,) * 3
    np.testing.assert_allclose(again.z.values, np.arange(odd_volume.shape[0]) * 100.0)
    assert um.attrs["unit"] == "um" and um.attrs["voxel_size"] == (0.05,) * 3
    np.testing.assert_allclose(um.z.values, (3 + np.arange(6)) * 0.05)
    np.testing.assert_allclose(um.x.values, (2 + np.arange(odd_volume.shape[2] - 2)) * 0.05)
    np.testing.assert_array_equal(um.values, odd_volume[3:9, :, 2:])


def test_dtype_cast_is_lossless_only(tmp_path, odd_volume):
    np.save(tmp_path / "v.npy", odd_volume)
    out = bigseg.ingest(tmp_path / "v.npy", tmp_path / "f.ome.zarr", dtype="float32", chunks=CHUNKS, progress=False)
    assert out.dtype == np.float32
    with pytest.raises(InputError, match="`dtype`"):
        bigseg.ingest(tmp_path / "v.npy", tmp_path / "u8.ome.zarr", dtype="uint8", progress=False)
    assert not (tmp_path / "u8.ome.zarr").exists()


@pytest.mark.parametrize("src, target", [("int64", "float64"), ("uint64", "float64"), ("int64", "complex128"),
                                         ("int32", "float32")])
def test_dtype_cast_refuses_integers_a_float_rounds(tmp_path, src, target):
    # NumPy calls int64 -> float64 "safe", but 2**53 + 1 came back as 2**53 without a word
    a = np.zeros((3, 4, 5), src)
    a[0, 0, 0] = 2**53 + 1 if np.dtype(src).itemsize == 8 else 2**24 + 1
    np.save(tmp_path / "v.npy", a)
    with pytest.raises(InputError, match=f"`dtype`.*{src}.*'{target}'"):
        bigseg.ingest(tmp_path / "v.npy", tmp_path / "f.ome.zarr", dtype=target, progress=False)
    assert not (tmp_path / "f.ome.zarr").exists()
    out = bigseg.ingest(tmp_path / "v.npy", tmp_path / "w.ome.zarr", dtype="uint64" if src == "uint64" else "int64",
                        progress=False)
    assert out.values[0, 0, 0] == a[0, 0, 0]  # an integer as wide or wider is lossless


def test_metadata_readable_with_plain_zarr(tmp_path, odd_volume):
    np.save(tmp_path / "v.npy", odd_volume)
    bigseg.ingest(tmp_path / "v.npy", tmp_path / "v.ome.zarr", chunks=CHUNKS, voxel_size=(0.7, 0.5, 0.5), unit="um",
                  levels=3, progress=False)
    raw = json.loads((tmp_path / "v.ome.zarr" / "zarr.json").read_text())
    assert raw["zarr_format"] == 3
    ome = raw["attributes"]["ome"]
    assert ome["version"] == "0.5"
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert all(a["unit"] == "micrometer" and a["type"] == "space" for a in ms["axes"])
    scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
    assert scales == [[0.7, 0.5, 0.5], [1.4, 1.0, 1.0], [2.8, 2.0, 2.0]]
    g = zarr.open_group(str(tmp_path / "v.ome.zarr"), mode="r")
    assert g["0"].shape == (37, 53, 71) and g["1"].shape == (18, 26, 35) and g["2"].shape == (9, 13, 17)
    assert g["0"].metadata.dimension_names == ("z", "y", "x")
    np.testing.assert_array_equal(g["0"][:], odd_volume)
    # level 1 = 2x2x2 mean, rounded
    ref1 = odd_volume[:36, :52, :70].reshape(18, 2, 26, 2, 35, 2).astype(np.float64).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(g["1"][:], np.round(ref1), atol=1)


def test_voxel_size_read_from_the_source(tmp_path, odd_volume):
    """OME-TIFF PhysicalSize*, ImageJ calibration (also of the first slice of a folder) and HDF5
    ``element_size_um`` give the voxel size; ``unit`` converts it; an explicit one wins."""
    vol = odd_volume[:6, :20, :24]
    tifffile.imwrite(tmp_path / "ome.ome.tif", vol, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeZ": 1.2, "PhysicalSizeY": 0.65, "PhysicalSizeX": 0.65,
        "PhysicalSizeZUnit": "µm", "PhysicalSizeYUnit": "µm", "PhysicalSizeXUnit": "µm"})
    tifffile.imwrite(tmp_path / "ij.tif", vol, imagej=True, resolution=(1 / 0.25, 1 / 0.5),
                     metadata={"spacing": 2.0, "unit": "micron", "axes": "ZYX"})
    (tmp_path / "ij_slices").mkdir()
    for i, s in enumerate(vol):
        tifffile.imwrite(tmp_path / "ij_slices" / f"s_{i}.tif", s, imagej=True, resolution=(20.0, 20.0),
                         metadata={"spacing": 0.1, "unit": "nm"})
    tifffile.imwrite(tmp_path / "mixed.ome.tif", vol, ome=True, metadata={  # z in nm, y and x in µm
        "axes": "ZYX", "PhysicalSizeZ": 500, "PhysicalSizeY": 0.65, "PhysicalSizeX": 0.65,
        "PhysicalSizeZUnit": "nm", "PhysicalSizeYUnit": "µm", "PhysicalSizeXUnit": "µm"})
    with h5py.File(tmp_path / "scan.h5", "w") as f:
        f.create_dataset("exchange/data", data=vol).attrs["element_size_um"] = [0.8, 0.4, 0.4]
    with h5py.File(tmp_path / "iso.h5", "w") as f:
        f.create_dataset("exchange/data", data=vol).attrs["element_size_um"] = 0.05  # one value: isotropic
    cases = {
        "ome.ome.tif": ((1.2, 0.65, 0.65), "um"),
        "mixed.ome.tif": ((0.5, 0.65, 0.65), "um"),
        "ij.tif": ((2.0, 0.5, 0.25), "um"),  # (spacing, 1 / y resolution, 1 / x resolution)
        "ij_slices": ((0.1, 0.05, 0.05), "nm"),
        "scan.h5": ((0.8, 0.4, 0.4), "um"),
        "iso.h5": ((0.05, 0.05, 0.05), "um"),
    }
    for i, (name, (vs, unit)) in enumerate(cases.items()):
        out = bigseg.ingest(tmp_path / name, tmp_path / f"{i}.ome.zarr", progress=False)
        assert out.attrs["voxel_size"] == pytest.approx(vs) and out.attrs["unit"] == unit, name
        np.testing.assert_array_equal(out.values, vol)
        axes = json.loads((tmp_path / f"{i}.ome.zarr" / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]["axes"]
        assert {a["unit"] for a in axes} == {{"um": "micrometer", "nm": "nanometer"}[unit]}
    nm = bigseg.ingest(tmp_path / "ome.ome.tif", tmp_path / "nm.ome.zarr", unit="nm", progress=False)
    assert nm.attrs["voxel_size"] == (1200.0, 650.0, 650.0) and nm.attrs["unit"] == "nm"
    own = bigseg.ingest(tmp_path / "ij.tif", tmp_path / "own.ome.zarr", voxel_size=3, unit="mm", progress=False)
    assert own.attrs["voxel_size"] == (3.0, 3.0, 3.0) and own.attrs["unit"] == "mm"
    with pytest.raises(InputError, match="`unit`.*'um'.*Got 'parsec'"):
        bigseg.ingest(tmp_path / "ome.ome.tif", tmp_path / "bad.ome.zarr", unit="parsec", progress=False)
    assert not (tmp_path / "bad.ome.zarr").exists()
    bigseg.save_volume(vol, tmp_path / "vox.ome.zarr", progress=False)  # unit "voxel": no physical size stated
    from bigseg.io._ingest import source_calibration

    assert source_calibration(tmp_path / "vox.ome.zarr") is None  # said as such (`bigseg ingest` notes it)
    for i, given in enumerate(({}, {"unit": "nm"})):  # like any uncalibrated source (.npy, TIFF): 1 nm
        # a unit asked for without a voxel size: the 1-unit voxel is warned about (the CLI notes it itself)
        with pytest.warns(UncalibratedWarning, match="`unit`='nm' without `voxel_size`") if given else nullcontext():
            got = bigseg.ingest(tmp_path / "vox.ome.zarr", tmp_path / f"v{i}.ome.zarr", progress=False, **given)
        assert got.attrs["voxel_size"] == (1.0, 1.0, 1.0) and got.attrs["unit"] == "nm"
    import zarr

    import xarray as xr

    flat = xr.DataArray(vol, dims=("z", "y", "x"), attrs={"voxel_size": (2.0, 1.0, 1.0), "unit": "voxel"})
    bigseg.save_volume(flat, tmp_path / "aniso.ome.zarr", progress=False)  # sizes with no unit: their ratios kept
    got = bigseg.ingest(tmp_path / "aniso.ome.zarr", tmp_path / "a.ome.zarr", progress=False)
    assert got.attrs["voxel_size"] == (2.0, 1.0, 1.0) and got.attrs["unit"] == "nm"
    zarr.save_array(str(tmp_path / "plain.zarr"), vol)  # a bare zarr array, as a .npy
    got = bigseg.ingest(tmp_path / "plain.zarr", tmp_path / "p.ome.zarr", voxel_size=2, progress=False)
    assert got.attrs["voxel_size"] == (2.0, 2.0, 2.0) and got.attrs["unit"] == "nm"
    # a TIFF that states no (complete) calibration keeps 1 nm: no z spacing is guessed for a slice
    tifffile.imwrite(tmp_path / "flat.tif", vol[0], imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"})
    with pytest.warns(UserWarning, match=r"pixels of 0.5 x 0.5 um but no z spacing.*--voxel-size"):
        flat = bigseg.ingest(tmp_path / "flat.tif", tmp_path / "flat.ome.zarr", progress=False)
    assert flat.attrs["voxel_size"] == (1.0, 1.0, 1.0) and flat.attrs["unit"] == "nm"


def test_an_imagej_stack_without_spacing_has_z_spacing_one_unit(tmp_path, odd_volume):
    """ImageJ leaves `spacing` out of a stack's description when it is 1 (FileSaver): such a
    stack (0.5 x 0.5 um pixels, 1 um apart) read as uncalibrated, 1 nm voxels."""
    vol = odd_volume[:5, :8, :9]
    tifffile.imwrite(tmp_path / "fiji.tif", vol, imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "micron", "axes": "ZYX"})
    assert "spacing" not in tifffile.TiffFile(tmp_path / "fiji.tif").imagej_metadata
    got = bigseg.ingest(tmp_path / "fiji.tif", tmp_path / "f.ome.zarr", progress=False)
    assert got.attrs["voxel_size"] == pytest.approx((1.0, 0.5, 0.5)) and got.attrs["unit"] == "um"
    np.testing.assert_array_equal(got.values, vol)


def test_unit_names():
    from bigseg.io._calibration import convert_length, normalise_unit, ome_unit

    assert {normalise_unit(u) for u in ("µm", "μm", "micron", "um", "micrometer", "Micrometre", "\\u00B5m")} == {"um"}
    assert normalise_unit("voxel") is None and ome_unit("pixel") is None and ome_unit("A") == "angstrom"
    assert convert_length((0.65, 1.0), "um", "nm") == (650.0, 1000.0) and convert_length((1.0,), "voxel", "nm") is None


def test_crop_keeps_a_box_of_every_scan(tmp_path, odd_volume):
    np.save(tmp_path / "v.npy", odd_volume)
    out = bigseg.ingest(tmp_path / "v.npy", tmp_path / "c.ome.zarr", crop="2:30, :, -20:", chunks=CHUNKS, progress=False)
    np.testing.assert_array_equal(out.values, odd_volume[2:30, :, -20:])
    info = bigseg.io.volume_info(tmp_path / "c.ome.zarr", stats=False)
    assert info["source_region"] == [[2, 30], [0, 53], [51, 71]]
    np.save(tmp_path / "w.npy", odd_volume + 1)
    series = bigseg.ingest([tmp_path / "v.npy", tmp_path / "w.npy"], tmp_path / "s.ome.zarr",
                           crop=[(5, 9), None, slice(10, 20)], progress=False)
    np.testing.assert_array_equal(series.values, np.stack([odd_volume, odd_volume + 1])[:, 5:9, :, 10:20])
    for bad, match in [("0:40,:,:", r"inside the shape \(37, 53, 71\)"), ("5:5,:,:", "non-empty"), (":,:", "one range per axis"),
                       ("a:b,:,:", "integers"), ([slice(0, 9, 2), None, None], "no steps"), (7, "ranges such as")]:
        with pytest.raises(InputError, match=f"`crop`.*{match}"):
            bigseg.ingest(tmp_path / "v.npy", tmp_path / "bad.ome.zarr", crop=bad, progress=False)
    assert not (tmp_path / "bad.ome.zarr").exists()


# ---------------------------------------------------------------- bad input ---------------------

def _nothing_written(tmp_path, name="out.ome.zarr"):
    assert not (tmp_path / name).exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_missing_path(tmp_path):
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        bigseg.ingest(tmp_path / "nope", tmp_path / "out.ome.zarr")
    _nothing_written(tmp_path)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceNotFoundError, match="TIFF slices"):
        bigseg.ingest(tmp_path / "empty", tmp_path / "out.ome.zarr")
    _nothing_written(tmp_path)


def test_unequal_tiff_slices(tmp_path, odd_volume):
    src = _tiff_folder(tmp_path / "s", odd_volume[:5])
    tifffile.imwrite(src / "s_5.tif", odd_volume[0, :10])
    with pytest.raises(VolumeFormatError, match="shape"):
        bigseg.ingest(src, tmp_path / "out.ome.zarr")
    tifffile.imwrite(src / "s_5.tif", odd_volume[0].astype(np.float32))
    with pytest.raises(VolumeFormatError, match="dtype"):
        bigseg.ingest(src, tmp_path / "out.ome.zarr")
    _nothing_written(tmp_path)


def test_truncated_tiff(tmp_path, odd_volume):
    src = _tiff_folder(tmp_path / "s", odd_volume[:6])
    data = (src / "s_3.tif").read_bytes()
    (src / "s_3.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(VolumeFormatError, match="s_3.tif"):
        bigseg.ingest(src, tmp_path / "out.ome.zarr")
    _nothing_written(tmp_path)


@pytest.mark.parametrize("metadata", [None, {}], ids=["plain", "shaped"])
def test_truncated_multipage_tiff(tmp_path, odd_volume, metadata):
    """A multi-page file cut short: tifffile logs the broken page list and reads the first page
    as the whole file (a volume one slice deep); the shaped description still states them all."""
    tifffile.imwrite(tmp_path / "scan.tif", odd_volume, metadata=metadata)
    data = (tmp_path / "scan.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(VolumeFormatError, match=r"'.*cut.tif' is truncated or damaged.*breaks after page \d"):
        bigseg.ingest(tmp_path / "cut.tif", tmp_path / "out.ome.zarr")
    assert not (tmp_path / "out.ome.zarr").exists()
    assert bigseg.ingest(tmp_path / "scan.tif", tmp_path / "whole.ome.zarr").shape == odd_volume.shape


def test_hdf5_without_dataset_lists_present(tmp_path, odd_volume):
    with h5py.File(tmp_path / "scan.h5", "w") as f:
        f.create_dataset("/recon/vol", data=odd_volume)
        f.create_dataset("/recon/vol_b", data=odd_volume)  # two volumes: which one is the user's to say
    with pytest.raises(VolumeFormatError, match=r"/exchange/data.*/recon/vol.*/recon/vol_b"):
        bigseg.ingest(tmp_path / "scan.h5", tmp_path / "out.ome.zarr")
    _nothing_written(tmp_path)


def test_raw_size_mismatch(tmp_path, odd_volume):
    (tmp_path / "scan.raw").write_bytes(odd_volume.tobytes()[:-2])
    with pytest.raises(VolumeFormatError, match="bytes"):
        bigseg.ingest(tmp_path / "scan.raw", tmp_path / "out.ome.zarr", shape=odd_volume.shape, dtype="<u2")
    with pytest.raises(InputError, match="`shape` and `dtype`"):
        bigseg.ingest(tmp_path / "scan.raw", tmp_path / "out.ome.zarr")
    np.save(tmp_path / "scan.npy", odd_volume)  # a shape for a file that has its own: said so (was "raw binary")
    with pytest.raises(InputError, match=r"`shape` only for a raw binary file.*scan.npy.*leave `shape` out"):
        bigseg.ingest(tmp_path / "scan.npy", tmp_path / "out.ome.zarr", shape=odd_volume.shape)
    with pytest.raises(InputError, match=r"`offset` only for a raw binary file.*offset=5"):  # was ignored
        bigseg.ingest(tmp_path / "scan.npy", tmp_path / "out.ome.zarr", offset=5)
    with pytest.raises(InputError, match="`levels`"):  # 0 was taken as 1
        bigseg.ingest(tmp_path / "scan.npy", tmp_path / "out.ome.zarr", levels=0)
    (tmp_path / "scan.npy").unlink()
    _nothing_written(tmp_path)


def test_not_3d(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((5, 6)))
    with pytest.raises(InputError, match=r"3D .*shape \(5, 6\)"):
        bigseg.ingest(tmp_path / "flat.npy", tmp_path / "out.ome.zarr")
    with pytest.raises(InputError, match="3D"):
        bigseg.save_volume(np.zeros((2, 3, 4, 5, 6)), tmp_path / "out.ome.zarr")
    _nothing_written(tmp_path)


def test_dest_exists_without_overwrite(tmp_path, odd_volume):
    np.save(tmp_path / "v.npy", odd_volume)
    bigseg.ingest(tmp_path / "v.npy", tmp_path / "out.ome.zarr", progress=False)
    with pytest.raises(OutputExistsError, match="overwrite"):
        bigseg.ingest(tmp_path / "v.npy", tmp_path / "out.ome.zarr", progress=False)
    np.save(tmp_path / "w.npy", odd_volume[::-1])
    out = bigseg.ingest(tmp_path / "w.npy", tmp_path / "out.ome.zarr", overwrite=True, progress=False)
    np.testing.assert_array_equal(out.values, odd_volume[::-1])


@pytest.mark.parametrize("chunks", [0, -3, (10, 0, 10), (1, 2)])
def test_bad_chunks(tmp_path, odd_volume, chunks):
    np.save(tmp_path / "v.npy", odd_volume)
    with pytest.raises(InputError, match="`chunks`"):
        bigseg.ingest(tmp_path / "v.npy", tmp_path / "out.ome.zarr", chunks=chunks)
    _nothing_written(tmp_path)


def test_a_file_named_npy_that_is_no_array_is_said_so(tmp_path):
    (tmp_path / "notes.npy").write_text("garbage\n")
    with pytest.raises(VolumeFormatError, match="to be a NumPy .npy array file.*b'garbag'") as refused:
        bigseg.ingest(tmp_path / "notes.npy", tmp_path / "out.ome.zarr")
    assert "allow_pickle" not in str(refused.value)  # numpy's word for it, and unsafe advice
    assert not (tmp_path / "out.ome.zarr").exists()


@pytest.mark.parametrize("voxel_size", [0, -1.0, (1, 1, 0), float("nan"), (1, 2)])
def test_bad_voxel_size(tmp_path, odd_volume, voxel_size):
    np.save(tmp_path / "v.npy", odd_volume)
    with pytest.raises(InputError, match="`voxel_size`"):
        bigseg.ingest(tmp_path / "v.npy", tmp_path / "out.ome.zarr", voxel_size=voxel_size)
    _nothing_written(tmp_path)


def test_failed_ingest_leaves_no_volume(tmp_path, odd_volume):
    """A source that breaks mid-way (a slice deleted after the checks) leaves nothing at dest."""
    src = _tiff_folder(tmp_path / "s", odd_volume)
    from bigseg.io import _ingest

    reader = _ingest.read_source(src)
    os.remove(src / "s_20.tif")

    arr = da.from_array(reader, chunks=CHUNKS, asarray=True, lock=False, fancy=False)
    with pytest.raises(OSError, match="s_20"):
        bigseg.save_volume(arr, tmp_path / "out.ome.zarr", progress=False)
    _nothing_written(tmp_path)
    with pytest.raises(SourceNotFoundError):
        bigseg.open_volume(tmp_path / "out.ome.zarr")
    # and a folder with arrays but no multiscales metadata (a killed writer) is refused
    shutil.copytree(tmp_path / "s", tmp_path / "junk")
    zarr.open_group(str(tmp_path / "half.ome.zarr"), mode="w").create_array("0", shape=(2, 2, 2), dtype="u1")
    with pytest.raises(VolumeFormatError, match="multiscales"):
        bigseg.open_volume(tmp_path / "half.ome.zarr")


def test_big_endian_and_mixed_compression_tiff_stack(tmp_path, odd_volume):
    """Memory-mapped (uncompressed) and decoded (compressed) slices mix; byte order is honoured."""
    src = tmp_path / "mixed"
    src.mkdir()
    for i, s in enumerate(odd_volume):
        tifffile.imwrite(src / f"s_{i}.tif", s.astype(">u2") if i % 3 else s, compression="zlib" if i % 4 == 0 else None,
                         byteorder=">" if i % 3 else "<")
    _check(bigseg.ingest(src, tmp_path / "m.ome.zarr", chunks=CHUNKS, progress=False), odd_volume)


_SLOW_BLOCK_RUNNING = threading.Event()


def _fail_fast_or_finish_slowly(x, block_info=None):
    """Block 0 fails once block 1 is running; block 1 finishes 0.4 s later."""
    if block_info[None]["chunk-location"][0] == 0:
        _SLOW_BLOCK_RUNNING.wait(5)
        raise RuntimeError("broken block")
    _SLOW_BLOCK_RUNNING.set()
    time.sleep(0.4)
    return x + 1


@pytest.mark.parametrize("where", ["default", "threads", "distributed"])
def test_failed_write_waits_for_running_blocks(tmp_path, where):
    """One block fails at once while another is still being computed: the slow block must not
    recreate the removed partial folder after ``save_volume`` has raised."""
    from distributed import Client

    _SLOW_BLOCK_RUNNING.clear()
    arr = da.zeros((8, 4, 4), chunks=(4, 4, 4), dtype="u1").map_blocks(_fail_fast_or_finish_slowly, dtype="u1")
    ctx = (Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None)
           if where == "distributed" else nullcontext())
    # "default": no scheduler configured, as in a plain script (dask arrays then use threads)
    with ctx, dask_config.set(num_workers=2, **({"scheduler": "threads"} if where == "threads" else {})):
        with pytest.raises(RuntimeError, match="broken block"):
            bigseg.save_volume(arr, tmp_path / "out.ome.zarr", progress=False)
        time.sleep(0.6)  # longer than the slow block: anything it wrote late would be on disk now
    _nothing_written(tmp_path)


def test_scans_of_an_operando_experiment_become_one_series(tmp_path, odd_volume, capsys):
    """Several sources (same file name in different folders: their dask keys must not collide)
    are stacked in order along t, with their times kept through OME-Zarr."""
    scans = []
    for i in range(3):
        (tmp_path / f"scan_{i}").mkdir()
        with h5py.File(tmp_path / f"scan_{i}" / "recon.h5", "w") as f:
            f.create_dataset("/exchange/data", data=odd_volume + i)
        scans.append(tmp_path / f"scan_{i}" / "recon.h5")
    out = bigseg.ingest(scans, tmp_path / "s.ome.zarr", chunks=CHUNKS, times=[0, 2.5, 10], progress=False)
    assert out.dims == ("t", "z", "y", "x") and tuple(max(c) for c in out.data.chunks) == (1, *CHUNKS)
    np.testing.assert_array_equal(out.values, np.stack([odd_volume + i for i in range(3)]))
    assert list(bigseg.open_volume(tmp_path / "s.ome.zarr").t.values) == [0.0, 2.5, 10.0]
    # the CLI: several sources then the destination
    from bigseg.cli import main

    assert main(["ingest", *map(str, scans[:2]), str(tmp_path / "c.ome.zarr"), "--chunks", "10,17,30"]) == 0
    assert bigseg.open_volume(tmp_path / "c.ome.zarr").shape == (2, *odd_volume.shape)
    # scans that do not fit together, or times that do not increase, are refused before writing
    with h5py.File(tmp_path / "small.h5", "w") as f:
        f.create_dataset("/exchange/data", data=odd_volume[:-1])
    with pytest.raises(InputError, match="first one's shape.*small.h5"):
        bigseg.ingest([scans[0], tmp_path / "small.h5"], tmp_path / "x.ome.zarr", progress=False)
    with pytest.raises(InputError, match="`times` to increase"):
        bigseg.ingest(scans, tmp_path / "x.ome.zarr", times=[0, 5, 1], progress=False)
    with pytest.raises(InputError, match=r"`times` to hold 3 numbers. Got \('a', 'b', 'c'\)"):  # said "positive"
        bigseg.ingest(scans, tmp_path / "x.ome.zarr", times=["a", "b", "c"], progress=False)
    assert bigseg.ingest(scans, tmp_path / "neg.ome.zarr", times=[-2, 0, 1.5], progress=False).t.values[0] == -2
    for name, size in (("um.h5", [0.05, 0.05, 0.05]), ("nm.h5", [0.06, 0.05, 0.05])):
        with h5py.File(tmp_path / name, "w") as f:
            f.create_dataset("/exchange/data", data=odd_volume).attrs["element_size_um"] = size
    with pytest.raises(InputError, match=r"first one's voxel size \(1.0, 1.0, 1.0\) nm. Got \(0.05, 0.05, 0.05\) um "
                                         r"for .*um.h5.*--voxel-size"):  # was: a series half NaN
        bigseg.ingest([scans[0], tmp_path / "um.h5"], tmp_path / "x.ome.zarr", progress=False)
    with pytest.raises(InputError, match="voxel size"):
        bigseg.ingest([tmp_path / "um.h5", tmp_path / "nm.h5"], tmp_path / "x.ome.zarr", progress=False)
    with pytest.raises(InputError, match=r"voxel size \(0.05, 0.05, 0.05\) um. Got none for "):  # was "(1.0, 1.0, 1.0) nm"
        bigseg.ingest([tmp_path / "um.h5", scans[0]], tmp_path / "x.ome.zarr", progress=False)
    same = bigseg.ingest([tmp_path / "um.h5", tmp_path / "um.h5"], tmp_path / "y.ome.zarr", unit="nm", progress=False)
    assert same.attrs["voxel_size"] == pytest.approx((50, 50, 50)) and not np.isnan(same.values).any()
    mixed = bigseg.ingest([scans[0], tmp_path / "nm.h5"], tmp_path / "z.ome.zarr", voxel_size=40, unit="nm", progress=False)
    assert mixed.attrs["voxel_size"] == (40, 40, 40) and mixed.dtype == odd_volume.dtype  # one grid said by the user
    with pytest.raises(InputError, match="`times`"):
        bigseg.ingest(scans, tmp_path / "x.ome.zarr", times=[0, 1], progress=False)
    with pytest.raises(InputError, match="`times` only with a list"):
        bigseg.ingest(scans[0], tmp_path / "x.ome.zarr", times=[0], progress=False)
    # an unquoted glob of TIFF slices (the shell expands it into many sources) is not a series
    src = _tiff_folder(tmp_path / "slices", odd_volume)
    with pytest.raises(InputError, match="single slices.*quoted glob"):
        bigseg.ingest(sorted(src.iterdir()), tmp_path / "x.ome.zarr", progress=False)
    assert not (tmp_path / "x.ome.zarr").exists()


def test_a_glob_of_whole_scans_is_a_series_in_number_order(tmp_path, odd_volume):
    """cycle_2 before cycle_10 (a shell sorts them as text: cycle_1, cycle_10, cycle_2), and a
    list given in text order is warned about."""
    scans = {}
    for i in (1, 2, 10):
        (tmp_path / f"cycle_{i}").mkdir()
        with h5py.File(tmp_path / f"cycle_{i}" / "recon.h5", "w") as f:
            f.create_dataset("/exchange/data", data=odd_volume + i)
        scans[i] = str(tmp_path / f"cycle_{i}" / "recon.h5")
        tifffile.imwrite(tmp_path / f"vol_{i}.tif", odd_volume + i)  # one 3D multi-page TIFF per scan
    want = np.stack([odd_volume + i for i in (1, 2, 10)])
    out = bigseg.ingest(str(tmp_path / "cycle_*" / "recon.h5"), tmp_path / "h.ome.zarr", chunks=CHUNKS,
                        times=[1, 2, 10], progress=False)
    np.testing.assert_array_equal(out.values, want)
    out = bigseg.ingest(str(tmp_path / "vol_*.tif"), tmp_path / "t.ome.zarr", chunks=CHUNKS, progress=False)
    np.testing.assert_array_equal(out.values, want)
    text_order = sorted(scans.values())
    assert text_order == [scans[1], scans[10], scans[2]]
    with pytest.warns(UserWarning, match=r"cycle_10.*comes before.*cycle_2.*glob quoted"):
        bigseg.ingest(text_order, tmp_path / "w.ome.zarr", chunks=CHUNKS, progress=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # number order, or an order the user chose: no warning
        warnings.filterwarnings("ignore", category=UncalibratedWarning)  # (but their 1 nm voxels: said)
        bigseg.ingest([scans[1], scans[2], scans[10]], tmp_path / "n.ome.zarr", chunks=CHUNKS, progress=False)
        bigseg.ingest([scans[10], scans[2], scans[1]], tmp_path / "r.ome.zarr", chunks=CHUNKS, progress=False)
    with pytest.raises(InputError, match="`times` to"):
        bigseg.ingest(str(tmp_path / "cycle_*" / "recon.h5"), tmp_path / "x.ome.zarr", times=[0, 1], progress=False)
    one = bigseg.ingest(str(tmp_path / "cycle_2*" / "rec*.h5"), tmp_path / "one.ome.zarr", progress=False)
    assert one.dims == ("z", "y", "x")  # a glob naming one scan: that volume, not a series of one step


def test_a_folder_of_one_multipage_tiff_is_that_scan_and_of_several_is_refused(tmp_path):
    """Was: the folder read as TIFF slices (shape 1 x y x x, the first page), then the ingest failed
    with numpy's broadcast error and left a partial store."""
    import tifffile

    from bigseg.errors import VolumeFormatError

    vol = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    (tmp_path / "one").mkdir()
    tifffile.imwrite(tmp_path / "one" / "scan.tif", vol)
    got = bigseg.ingest(tmp_path / "one", tmp_path / "one.ome.zarr", progress=False)
    np.testing.assert_array_equal(got.values, vol)
    (tmp_path / "two").mkdir()
    for i in range(2):
        tifffile.imwrite(tmp_path / "two" / f"scan{i}.tif", vol)
    with pytest.raises(VolumeFormatError, match=r"slices of one page each .*Got 5 pages in .*scan0.tif"):
        bigseg.ingest(tmp_path / "two", tmp_path / "two.ome.zarr", progress=False)
    assert not list(tmp_path.glob("*two.ome.zarr*"))


def test_tiffs_a_qa_pass_found_misread(tmp_path):
    """A colour TIFF is refused (it read as a volume 3 voxels deep, compressed it crashed); one
    compressed volumetric page and int64/uint64 TIFFs (numpy's longlong, which zarr did not map)
    are read."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
    for i, compression in enumerate((None, "zlib")):
        tifffile.imwrite(tmp_path / f"rgb{i}.tif", rgb, photometric="rgb", compression=compression)
        with pytest.raises(InputError, match=r"grey values.*a colour TIFF \(3 samples per pixel, RGB\)"):
            bigseg.ingest(tmp_path / f"rgb{i}.tif", tmp_path / f"rgb{i}.ome.zarr", progress=False)
    vol = rng.integers(0, 999, (16, 32, 32)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "v.tif", vol, tile=(8, 16, 16), volumetric=True, compression="zlib")
    got = bigseg.ingest(tmp_path / "v.tif", tmp_path / "v.ome.zarr", chunks=7, progress=False)
    np.testing.assert_array_equal(got.values, vol)
    big = (np.arange(5 * 6 * 8).reshape(5, 6, 8) * 2**40).astype(np.int64)
    tifffile.imwrite(tmp_path / "i64.tif", big, photometric="minisblack")
    (tmp_path / "u64").mkdir()
    for z in range(5):
        tifffile.imwrite(tmp_path / "u64" / f"s{z}.tif", big[z].astype(np.uint64))
    for src, dt in (("i64.tif", np.int64), ("u64", np.uint64)):
        got = bigseg.ingest(tmp_path / src, tmp_path / f"{src}.ome.zarr", chunks=3, progress=False)
        assert got.dtype == dt
        np.testing.assert_array_equal(got.values, big.astype(dt))


def test_values_a_narrower_float_cannot_hold_are_refused_not_made_inf(tmp_path):
    a = np.full((4, 5, 6), 1e5)
    a[0] = 1.0
    np.save(tmp_path / "f.npy", a)
    with pytest.raises(InputError, match=r"`dtype` float16 to hold the source's values.*Got values up to 100000"):
        bigseg.ingest(tmp_path / "f.npy", tmp_path / "f.ome.zarr", dtype="float16", progress=False)
    assert not (tmp_path / "f.ome.zarr").exists()
    ok = bigseg.ingest(tmp_path / "f.npy", tmp_path / "g.ome.zarr", dtype="float32", progress=False)
    np.testing.assert_array_equal(ok.values, a.astype(np.float32))


def test_series_chunks_times_raw_dtypes_and_calibration_are_checked(tmp_path):
    four = np.arange(2 * 16 * 20 * 24, dtype=np.uint16).reshape(2, 16, 20, 24)
    np.save(tmp_path / "four.npy", four)
    got = bigseg.ingest(tmp_path / "four.npy", tmp_path / "four.ome.zarr", chunks=(7, 9, 11), progress=False)
    assert got.data.chunksize == (1, 7, 9, 11)  # (z, y, x) chunks for a series too (were refused: "4 values")
    np.testing.assert_array_equal(got.values, four)
    np.save(tmp_path / "a.npy", four[0])
    np.save(tmp_path / "b.npy", four[1])
    with pytest.raises(InputError, match=r"`times` to be finite numbers. Got \[0.0, inf\]"):
        bigseg.ingest([tmp_path / "a.npy", tmp_path / "b.npy"], tmp_path / "s.ome.zarr", times=[0.0, float("inf")],
                      progress=False)
    four[0].astype("<u2").tofile(tmp_path / "r.raw")
    for bad in ("O", "S2"):
        with pytest.raises(InputError, match=rf"`dtype` to be a numeric dtype.*Got '{bad}'"):
            bigseg.ingest(tmp_path / "r.raw", tmp_path / "r.ome.zarr", shape=(16, 20, 24), dtype=bad, progress=False)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["d"] = np.full((5, 4, 3), b"ab")
        f["v"] = four[0]
        f["v"].attrs["element_size_um"] = [0.5, 0.5]  # two values: no (z, y, x) voxel size
    with pytest.raises(InputError, match=r"`source` to hold numbers .*Got dtype \|S2"):
        bigseg.ingest(tmp_path / "s.h5", tmp_path / "h.ome.zarr", dataset="d", progress=False)
    with pytest.warns(UserWarning, match=r"element_size_um \[.*0.5.*0.5.*\] is no \(z, y, x\) voxel size"):
        got = bigseg.ingest(tmp_path / "s.h5", tmp_path / "v.ome.zarr", dataset="v", voxel_size=None, progress=False)
    assert not (tmp_path / "h.ome.zarr").exists() and not (tmp_path / "r.ome.zarr").exists()


def test_an_imagej_hyperstack_series_keeps_its_frame_interval(tmp_path, odd_volume):
    """An ImageJ TZYX hyperstack states its frame interval (`finterval`, in `tunit`, seconds by
    default): its scans were numbered 0, 1, 2."""
    series = np.stack([odd_volume[:4, :5, :6] + i for i in range(3)])
    for name, meta, want, unit in [("m", {"finterval": 30.0, "tunit": "min"}, [0, 30, 60], "min"),
                                   ("s", {"finterval": 0.5}, [0, 0.5, 1], "s")]:
        tifffile.imwrite(tmp_path / f"{name}.tif", series, imagej=True, metadata={"axes": "TZYX", **meta})
        got = bigseg.ingest(tmp_path / f"{name}.tif", tmp_path / f"{name}.ome.zarr", progress=False)
        np.testing.assert_array_equal(got.values, series)
        assert list(got.t.values) == want and got.t.attrs["units"] == unit


def test_a_series_times_are_given_with_their_unit(tmp_path, odd_volume, capsys):
    # scans 30 min apart: times without a unit could not say minutes from seconds or cycles
    from bigseg.cli import main

    scans = []
    for i in range(3):
        np.save(tmp_path / f"scan_{i}.npy", odd_volume + i)
        scans.append(tmp_path / f"scan_{i}.npy")
    out = bigseg.ingest(scans, tmp_path / "s.ome.zarr", times=[0, 30, 60], time_unit="min", progress=False)
    assert list(out.t.values) == [0.0, 30.0, 60.0] and out.t.attrs["units"] == "min"
    assert main(["ingest", str(tmp_path / "scan_*.npy"), str(tmp_path / "c.ome.zarr"), "--times", "0,1.5,3",
                 "--time-unit", "h"]) == 0
    assert bigseg.open_volume(tmp_path / "c.ome.zarr").t.attrs["units"] == "h"
    capsys.readouterr()
    assert main(["info", str(tmp_path / "c.ome.zarr")]) == 0
    said = capsys.readouterr().out
    assert "times       0, 1.5, 3 h\n" in said
    assert "voxels, all 3 scans pooled)" in said  # the statistics are of every scan together
    with pytest.raises(InputError, match="`time_unit` only for a series"):
        bigseg.ingest(scans[0], tmp_path / "x.ome.zarr", time_unit="min", progress=False)
    with pytest.raises(InputError, match="`time_unit` to be"):
        bigseg.ingest(scans, tmp_path / "x.ome.zarr", time_unit="", progress=False)


def test_tiff_channels_and_axis_orders_are_read_as_the_file_states_them(tmp_path):
    """A multi-channel 2D image (OME axes CYX) or series (ImageJ TCYX) read as a volume of its
    channels stacked along z, a series stored z by z (ZTYX) as one volume of the times' planes
    mixed, and a series of one-plane scans (TZYX with Z = 1, which tifffile squeezes to TYX) as a
    3D volume. (An ImageJ CYX stack is what tifffile writes for a 3D array given no axes: z.)"""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (3, 6, 7), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "cyx.ome.tif", img, ome=True, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "tcyx.tif", np.stack([img, img]), imagej=True, metadata={"axes": "TCYX"})
    for name, axes in (("cyx.ome.tif", "CYX"), ("tcyx.tif", "TCYX")):
        with pytest.raises(InputError, match=rf"one volume or a series. Got .*{name}.* with 3 channels \(axes {axes}"):
            bigseg.ingest(tmp_path / name, tmp_path / "c.ome.zarr", progress=False)
    tifffile.imwrite(tmp_path / "cyx.tif", img, imagej=True)
    np.testing.assert_array_equal(bigseg.ingest(tmp_path / "cyx.tif", tmp_path / "z.ome.zarr", progress=False), img)
    zt = rng.integers(0, 255, (3, 2, 6, 7), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "zt.ome.tif", zt, ome=True, metadata={"axes": "ZTYX"})
    with pytest.raises(InputError, match=r"time point by time point \(axes TZYX\). Got .*zt.ome.tif.* axes ZTYX"):
        bigseg.ingest(tmp_path / "zt.ome.tif", tmp_path / "c.ome.zarr", progress=False)
    assert not list(tmp_path.glob("*c.ome.zarr*"))
    flat = rng.integers(0, 255, (3, 1, 6, 7), dtype=np.uint8)  # three scans of one plane each
    import xarray as xr

    series = xr.DataArray(flat, dims=("t", "z", "y", "x"), attrs={"voxel_size": (2.0, 1.0, 1.0), "unit": "um"})
    bigseg.export(series, tmp_path / "flat.tif", progress=False)
    got = bigseg.ingest(tmp_path / "flat.tif", tmp_path / "flat.ome.zarr", progress=False)
    assert got.dims == ("t", "z", "y", "x")
    np.testing.assert_array_equal(got.values, flat)


@pytest.mark.parametrize("how", ["ome-zero", "ome-negative", "ome-pixel", "ome-no-z", "imagej-zero-spacing",
                                 "imagej-inch"])
def test_a_tiff_calibration_that_is_no_voxel_size_is_said_not_dropped_silently(tmp_path, odd_volume, how):
    """An OME-TIFF or ImageJ TIFF that states a voxel size of 0, a negative one, one in pixels or
    inches, or one without z was read as 1 nm without a word (HDF5's element_size_um is warned)."""
    vol = odd_volume[:4, :6, :7]
    path = tmp_path / "v.tif"
    if how.startswith("ome"):
        z = {"ome-zero": 0.0, "ome-negative": -0.7}.get(how, 0.7)
        md = {"axes": "ZYX", "PhysicalSizeZ": z, "PhysicalSizeY": 0.5, "PhysicalSizeX": 0.5}
        if how == "ome-pixel":
            md.update({f"PhysicalSize{ax}Unit": "pixel" for ax in "ZYX"})
        if how == "ome-no-z":
            del md["PhysicalSizeZ"]
        tifffile.imwrite(path, vol, ome=True, metadata=md)
    else:
        tifffile.imwrite(path, vol, imagej=True, resolution=(2.0, 2.0), metadata={
            "axes": "ZYX", "spacing": 0.0 if how == "imagej-zero-spacing" else 1.5,
            "unit": "inch" if how == "imagej-inch" else "micron"})
    with pytest.warns(UserWarning, match=r"v.tif'?: its (OME-XML|ImageJ).*ignored; pass the voxel size"):
        got = bigseg.ingest(path, tmp_path / "v.ome.zarr", progress=False)
    assert got.attrs["voxel_size"] == (1.0, 1.0, 1.0) and got.attrs["unit"] == "nm"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the voxel size given: nothing to say
        bigseg.ingest(path, tmp_path / "w.ome.zarr", voxel_size=2, unit="um", progress=False)


def test_hdf5_volumes_behind_links_are_found_and_listed_once(tmp_path, odd_volume, capsys):
    """A NeXus file whose /entry/data/data is an external link to the detector's file was said to
    hold no datasets ("Datasets present: none"); a dataset reached by a soft link too is one."""
    from bigseg.cli import main

    vol = odd_volume[:4, :5, :6]
    with h5py.File(tmp_path / "detector.h5", "w") as f:
        f.create_dataset("/data", data=vol)
    with h5py.File(tmp_path / "scan.nxs", "w") as f:
        f["/entry/data/data"] = h5py.ExternalLink("detector.h5", "/data")
        f["/entry/instrument/detector/data"] = h5py.SoftLink("/entry/data/data")
        f["/entry/broken"] = h5py.SoftLink("/nowhere")
    got = bigseg.ingest(tmp_path / "scan.nxs", tmp_path / "s.ome.zarr", progress=False)
    np.testing.assert_array_equal(got.values, vol)
    assert main(["info", str(tmp_path / "scan.nxs"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["datasets"] == {"/entry/data/data": [[4, 5, 6], "uint16"]}


def test_nexus_file_with_several_volumes_reads_its_nxdata_signal(tmp_path, odd_volume):
    """A NeXus file holding the raw frames beside the reconstruction was refused ("Expected
    `dataset` '/exchange/data'") though its NXdata group names the volume to read (`signal`)."""
    vol = odd_volume[:4, :5, :6]

    def nexus(path, *, defaults):
        with h5py.File(path, "w") as f:
            f.create_dataset("/entry/instrument/detector/frames", data=vol[::-1] + 7)  # another 3D dataset
            data = f.create_group("/entry/reconstruction")
            data.attrs["NX_class"] = b"NXdata"
            data.attrs["signal"] = "volume"
            data.create_dataset("volume", data=vol)
            f["/entry"].attrs["NX_class"] = "NXentry"
            if defaults:
                f.attrs["default"] = "entry"
                f["/entry"].attrs["default"] = "reconstruction"
                other = f.create_group("/entry/frames_plot")  # a second NXdata: the defaults choose
                other.attrs["NX_class"] = "NXdata"
                other.attrs["signal"] = "frames"
                other["frames"] = h5py.SoftLink("/entry/instrument/detector/frames")

    for i, defaults in enumerate((True, False)):
        nexus(tmp_path / f"scan{i}.nxs", defaults=defaults)
        got = bigseg.ingest(tmp_path / f"scan{i}.nxs", tmp_path / f"s{i}.ome.zarr", progress=False)
        np.testing.assert_array_equal(got.values, vol)
    # named explicitly, the other one is read
    got = bigseg.ingest(tmp_path / "scan0.nxs", tmp_path / "f.ome.zarr", dataset="/entry/instrument/detector/frames",
                        progress=False)
    np.testing.assert_array_equal(got.values, vol[::-1] + 7)


def test_a_path_with_glob_characters_that_exists_is_that_path(tmp_path, odd_volume):
    """A folder "scan [2]" was taken for a glob and said to hold no TIFF slices; a file "q?.npy"
    (a glob matching itself) recursed until Python's limit."""
    vol = odd_volume[:4, :5, :6]
    _tiff_folder(tmp_path / "scan [2]", vol)
    np.save(tmp_path / "q?.npy", vol)
    for i, name in enumerate(("scan [2]", "q?.npy")):
        got = bigseg.ingest(tmp_path / name, tmp_path / f"{i}.ome.zarr", progress=False)
        np.testing.assert_array_equal(got.values, vol)
    np.save(tmp_path / "q1.npy", vol + 1)  # a pattern that names no path still matches
    got = bigseg.ingest(str(tmp_path / "q[1].npy"), tmp_path / "p.ome.zarr", progress=False)
    np.testing.assert_array_equal(got.values, vol + 1)


@pytest.mark.parametrize("size, unit", [([-1.0, 1.0, 1.0], "um"), ([1.0, 1.0, 1.0], "furlong"), ([0.5, 0.5], "nm")])
def test_an_hdf5_voxel_size_that_is_no_voxel_size_is_said(tmp_path, size, unit):
    """bigseg's own `voxel_size`/`unit` attributes holding no voxel size read as 1 nm without a
    word (a bad element_size_um is warned)."""
    with h5py.File(tmp_path / "v.h5", "w") as f:
        ds = f.create_dataset("exchange/data", data=np.zeros((3, 4, 5), np.uint8))
        ds.attrs["voxel_size"], ds.attrs["unit"] = size, unit
    with pytest.warns(UserWarning, match=rf"v.h5'?: the dataset's voxel_size .* {unit} is no \(z, y, x\) voxel size"):
        got = bigseg.ingest(tmp_path / "v.h5", tmp_path / "v.ome.zarr", progress=False)
    assert got.attrs["voxel_size"] == (1.0, 1.0, 1.0) and got.attrs["unit"] == "nm"


def test_an_hdf5_export_of_a_volume_in_voxels_reads_back_without_a_word(tmp_path):
    data = np.zeros((3, 4, 5), np.uint8)
    with pytest.warns(UserWarning, match="no physical voxel size"):
        bigseg.export(data, tmp_path / "v.h5", progress=False)
    with warnings.catch_warnings(record=True) as said:  # but that its voxels are taken as 1 nm
        warnings.simplefilter("always")
        got = bigseg.ingest(tmp_path / "v.h5", tmp_path / "v.ome.zarr", progress=False)
    assert [w.category for w in said] == [UncalibratedWarning]
    assert got.attrs["voxel_size"] == (1.0, 1.0, 1.0) and got.attrs["unit"] == "nm"


def test_ingest_never_writes_into_or_over_its_source(tmp_path):
    """Was: the API wrote an OME-Zarr inside the zarr store it read (the CLI refused it)."""
    import bigseg

    src = tmp_path / "src.ome.zarr"
    bigseg.save_volume(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6), src, progress=False)
    before = sorted(p.relative_to(src) for p in src.rglob("*"))
    with pytest.raises(InputError, match=r"`dest` to be outside the input"):
        bigseg.ingest(src, src / "inner.ome.zarr", progress=False)
    npy = tmp_path / "a.npy"
    np.save(npy, np.zeros((3, 4, 5), np.float32))
    with pytest.raises(InputError, match=r"`dest` to be another place than the input"):
        bigseg.ingest([npy, npy], npy, progress=False)
    assert sorted(p.relative_to(src) for p in src.rglob("*")) == before


def test_a_unit_without_a_voxel_size_for_an_uncalibrated_source_is_said_once(tmp_path, odd_volume, capsys):
    """`ingest(x.npy, unit="um")` took 1 um voxels without a word (the CLI notes it; the API now
    warns, and the CLI does not say it twice)."""
    from bigseg.cli import main

    np.save(tmp_path / "a.npy", odd_volume)
    with pytest.warns(UncalibratedWarning, match="a voxel is taken as 1 um"):
        got = bigseg.ingest(tmp_path / "a.npy", tmp_path / "a.ome.zarr", unit="um", progress=False)
    assert got.attrs["voxel_size"] == (1.0, 1.0, 1.0) and got.attrs["unit"] == "um"
    assert main(["ingest", str(tmp_path / "a.npy"), str(tmp_path / "b.ome.zarr"), "--unit", "um", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "states no voxel size and --voxel-size was not passed" in err and "warning" not in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a voxel size given: nothing said
        bigseg.ingest(tmp_path / "a.npy", tmp_path / "c.ome.zarr", voxel_size=2, unit="um", progress=False)
        bigseg.ingest(tmp_path / "a.npy", tmp_path / "e.ome.zarr", voxel_size=2, progress=False)
    # neither asked for (a notebook's ingest): was silent, every size then in voxels under the name nm
    with pytest.warns(UncalibratedWarning, match="neither `voxel_size` nor `unit` was given: a voxel is taken as "
                                                 "1 nm") as said:
        assert bigseg.ingest(tmp_path / "a.npy", tmp_path / "d.ome.zarr", progress=False).attrs["unit"] == "nm"
    assert [w.filename for w in said] == [__file__]  # at the caller's line, once
    assert main(["ingest", str(tmp_path / "a.npy"), str(tmp_path / "f.ome.zarr"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "states no voxel size and --voxel-size was not passed" in err and "Warning" not in err


def test_an_array_in_memory_as_source_is_refused_naming_save_volume(tmp_path):
    """`ingest(array, dest)` (NumPy, dask or a DataArray in memory, alone or in a list of scans)
    failed deep in os.fspath with "expected str, bytes or os.PathLike object, not ndarray"; it is
    refused by name, pointing to save_volume, which writes an array, and nothing is written."""
    a = np.zeros((3, 4, 5), np.float32)
    npy = tmp_path / "a.npy"
    np.save(npy, a)
    for source in (a, da.from_array(a), bigseg.io.make_volume(a, voxel_size=50), [npy, a]):
        with pytest.raises(InputError, match=r"Expected `source` to be the path of a scan .* Got \w+.*"
                                             r"bigseg\.save_volume\(data, dest"):
            bigseg.ingest(source, tmp_path / "out.ome.zarr", progress=False)
    with pytest.raises(InputError, match=r"Got int instead"):
        bigseg.ingest(3, tmp_path / "out.ome.zarr", progress=False)
    assert not (tmp_path / "out.ome.zarr").exists()


def test_a_voxel_size_without_unit_over_a_stated_one_is_said(tmp_path):
    """`voxel_size=50` (meant as nm) over a source stating 0.5 um was taken as 50 um without a
    word; said, naming the unit it is taken in. With `unit`, or the same size, no word."""
    import warnings

    src = tmp_path / "a.tif"
    bigseg.export(bigseg.synth.xct(bigseg.synth.electrode((6, 8, 8), seed=1, voxel_size=0.5, unit="um")), src,
                  progress=False)
    with pytest.warns(UserWarning, match=r"`voxel_size`=50 is taken in the source's unit, um, replacing the 0.5 um "
                                         r"the source states \(100 times\): another unit meant"):
        vol = bigseg.ingest(src, tmp_path / "a.ome.zarr", voxel_size=50, progress=False)
    assert vol.attrs["voxel_size"] == (50.0, 50.0, 50.0) and vol.attrs["unit"] == "um"  # still taken
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bigseg.ingest(src, tmp_path / "b.ome.zarr", voxel_size=50, unit="nm", progress=False)
        bigseg.ingest(src, tmp_path / "c.ome.zarr", voxel_size=0.5, progress=False)
        bigseg.ingest(src, tmp_path / "d.ome.zarr", voxel_size=0.65, progress=False)  # a correction: no slip


def test_a_float32_element_size_um_is_the_size_it_states(tmp_path, odd_volume):
    """Fiji's HDF5 plugin and ilastik store ``element_size_um`` as float32: 0.3 is read as 0.3
    µm (was 0.30000001192092896 in the metadata, the coordinates and every area)."""
    with h5py.File(tmp_path / "fiji.h5", "w") as f:
        ds = f.create_dataset("exchange/data", data=odd_volume[:4, :6, :8])
        ds.attrs["element_size_um"] = np.array([0.3, 0.1, 0.65], np.float32)
    out = bigseg.ingest(tmp_path / "fiji.h5", tmp_path / "a.ome.zarr", progress=False)
    assert out.attrs["voxel_size"] == (0.3, 0.1, 0.65) and out.attrs["unit"] == "um"
    nm = bigseg.ingest(tmp_path / "fiji.h5", tmp_path / "nm.ome.zarr", unit="nm", progress=False)
    assert nm.attrs["voxel_size"] == (300.0, 100.0, 650.0)


def test_one_file_in_two_chunkings_does_not_share_keys(tmp_path):
    """Was: a source's keys named its path but not its chunks, so the same file opened in two
    chunkings in one graph had the same keys: one chunking's blocks were taken for the other's
    (an error, or silently wrong voxels where both cut it into as many blocks)."""
    from bigseg.io import open_source

    a = np.arange(32 ** 3, dtype=np.uint16).reshape(32, 32, 32)
    np.save(tmp_path / "v.npy", a)
    x = open_source(tmp_path / "v.npy", chunks=16).data
    y = open_source(tmp_path / "v.npy", chunks=(20, 20, 20)).data  # 2 blocks per axis too
    assert x.name != y.name
    assert x.name == open_source(tmp_path / "v.npy", chunks=16).data.name  # the same read: the same keys
    np.testing.assert_array_equal((x.astype(np.int32) - y.astype(np.int32)).compute(), 0)
