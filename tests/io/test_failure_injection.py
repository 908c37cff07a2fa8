"""Failures of storage said by name: a damaged input (a zarr chunk file cut short, overwritten or
zeroed, unreadable metadata, a damaged compressed TIFF slice or HDF5 chunk) names the store or
file, the chunk and what is wrong, not a numcodecs / zlib / h5py traceback; an output that
cannot be written names the argument the user gave."""

from __future__ import annotations

import numpy as np
import pytest

import bigseg
from bigseg import filters
from bigseg.errors import VolumeFormatError


def _saved(tmp_path):
    data = np.random.default_rng(0).random((16, 16, 16), dtype=np.float32)
    path = tmp_path / "scan.ome.zarr"
    bigseg.save_volume(data, path, chunks=8)
    return path


@pytest.mark.parametrize("damage", [b"", b"\x00" * 40, b"not a zstd frame at all"])
def test_a_damaged_chunk_is_named_with_its_store(tmp_path, damage):
    path = _saved(tmp_path)
    (path / "0" / "c" / "1" / "0" / "1").write_bytes(damage)
    vol = bigseg.open_volume(path)  # still lazy: nothing read yet
    with pytest.raises(VolumeFormatError, match=r"scan\.ome\.zarr/0'.*chunk 'c/1/0/1'"):
        vol.compute()
    with pytest.raises(VolumeFormatError, match=r"chunk 'c/1/0/1'"):  # read with a halo too
        filters.median(vol, size=3).compute()


def test_a_flipped_bit_in_a_chunk_is_caught_by_its_checksum(tmp_path):
    """Bit rot or a copy damaged on its way: a zstd frame without a checksum decoded a flipped bit to
    other voxel values without a word."""
    path = _saved(tmp_path)
    chunk = path / "0" / "c" / "1" / "0" / "1"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10
    chunk.write_bytes(bytes(data))
    with pytest.raises(VolumeFormatError, match=r"scan\.ome\.zarr/0'.*chunk 'c/1/0/1'.*checksum"):
        bigseg.open_volume(path).compute()


def test_a_missing_chunk_is_named_not_read_as_zeros(tmp_path):
    """An interrupted copy (rsync, Globus) leaves chunk files out, which zarr reads as the fill value:
    bigseg's own stores hold every chunk, those of zeros too, so one missing is damage."""
    data = np.random.default_rng(0).random((16, 16, 16), dtype=np.float32)
    data[:8, :8, :8] = 0
    path = tmp_path / "scan.ome.zarr"
    bigseg.save_volume(data, path, chunks=8, levels=2)
    assert (path / "0" / "c" / "0" / "0" / "0").is_file()  # a chunk of zeros is written too
    np.testing.assert_array_equal(bigseg.open_volume(path).values, data)
    (path / "0" / "c" / "1" / "0" / "1").unlink()
    with pytest.raises(VolumeFormatError, match=r"scan\.ome\.zarr/0'.*no chunk 'c/1/0/1'.*stopped part-way"):
        bigseg.open_volume(path).compute()
    with pytest.raises(VolumeFormatError, match=r"no chunk 'c/1/0/1'"):  # read with a halo too
        filters.median(bigseg.open_volume(path), size=3).compute()
    (path / "1" / "c" / "0" / "0" / "0").unlink()  # a pyramid level's too
    with pytest.raises(VolumeFormatError, match=r"scan\.ome\.zarr/1'.*no chunk 'c/0/0/0'"):
        bigseg.open_volume(path, level=1).compute()


def test_info_counts_the_chunk_files(tmp_path):
    """``bigseg info`` (no read of level 0) finds a chunk file missing anywhere in the store by listing it."""
    from bigseg.io import volume_info

    path = _saved(tmp_path)
    bigseg.save_labels(np.zeros((16, 16, 16), np.uint8), path, name="seg", phases=["a"], chunks=8)
    assert volume_info(path, stats=False)["labels"] == ["seg"]
    (path / "labels" / "seg" / "0" / "c" / "1" / "1" / "0").unlink()
    with pytest.raises(VolumeFormatError, match=r"Expected 8 chunk files in the stored array '.*labels/seg/0'.*Got 7"):
        volume_info(path, stats=False)


@pytest.mark.parametrize("old, new, said", [
    # a shape grown in zarr.json (hand-edited, a damaged digit) read the chunks beyond the data as zeros
    ('"shape": [\n    16,', '"shape": [\n    24,', r"no chunk 'c/2/[01]/[01]'.*larger shape"),
    ('"float32"', '"uint16"', r"another dtype"),
], ids=["larger shape", "another dtype"])
def test_metadata_edited_is_named(tmp_path, old, new, said):
    path = _saved(tmp_path)
    meta = path / "0" / "zarr.json"
    meta.write_text(meta.read_text().replace(old, new))
    with pytest.raises(VolumeFormatError, match=said):
        bigseg.open_volume(path).compute()


def test_unreadable_metadata_is_named(tmp_path):
    path = _saved(tmp_path)
    (path / "0" / "zarr.json").write_bytes(b"\xc8\x01garbage")
    with pytest.raises(VolumeFormatError, match=r"scan\.ome\.zarr/0'.*metadata that cannot be read"):
        bigseg.open_volume(path)
    (path / "zarr.json").write_text('{"zarr_format": 3, "node_ty')
    with pytest.raises(VolumeFormatError, match=r"whose zarr\.json cannot be read"):
        bigseg.open_volume(path)


def test_reads_keep_the_plain_arrays_token(tmp_path):
    """Resumable writes are keyed by the graph: reading through the checked array keeps the key."""
    import dask.array as da
    import zarr

    path = _saved(tmp_path)
    assert bigseg.open_volume(path).data.name == da.from_zarr(zarr.open_array(str(path / "0"), mode="r")).name


def _damage(path, at, n):
    data = bytearray(path.read_bytes())
    data[at:at + n] = b"\x07" * n
    path.write_bytes(bytes(data))


def test_a_damaged_compressed_tiff_slice_is_named(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    data = np.random.default_rng(0).integers(0, 60000, (6, 16, 16), dtype=np.uint16)
    (tmp_path / "tifs").mkdir()
    for i, page in enumerate(data):
        tifffile.imwrite(tmp_path / "tifs" / f"s_{i:03d}.tif", page, compression="zlib")
    _damage(tmp_path / "tifs" / "s_003.tif", 200, 200)  # its directory intact, its pixels not
    with pytest.raises(VolumeFormatError, match=r"s_003\.tif' \(z 3:4\): zlib\.error"):
        bigseg.ingest(tmp_path / "tifs", tmp_path / "out.ome.zarr")
    assert not (tmp_path / "out.ome.zarr").exists()


def test_a_damaged_hdf5_chunk_is_named(tmp_path):
    h5py = pytest.importorskip("h5py")
    data = np.random.default_rng(0).integers(0, 60000, (16, 16, 16), dtype=np.uint16)
    src = tmp_path / "scan.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("/exchange/data", data=data, chunks=(4, 16, 16), compression="gzip")
    _damage(src, src.stat().st_size // 2, 600)
    with pytest.raises(VolumeFormatError, match=r"Cannot read HDF5 file '.*scan\.h5' \(z \d+:\d+\)"):
        bigseg.ingest(src, tmp_path / "out.ome.zarr", chunks=8)
    assert not (tmp_path / "out.ome.zarr").exists()


def test_ingest_names_dest_where_it_cannot_be_written(tmp_path):
    np.save(tmp_path / "scan.npy", np.zeros((4, 4, 4), np.uint8))
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(bigseg.errors.OutputNotWritableError, match=r"^Expected `dest` in a folder"):
        bigseg.ingest(tmp_path / "scan.npy", tmp_path / "afile" / "out.ome.zarr")


@pytest.mark.parametrize("resume_key", [None, "k"])
def test_a_destination_that_stops_taking_writes_is_said_and_resumes(tmp_path, monkeypatch, resume_key):
    """A destination made read-only part-way (permissions changed, a mount remounted read-only)
    failed with zarr's PermissionError traceback; now named, with what was kept."""
    import errno

    from zarr.storage import _local

    from bigseg.errors import OutputNotWritableError

    data = np.random.default_rng(0).random((16, 16, 16), dtype=np.float32)
    put, writes = _local._put, []

    def refused_after_some(path, value, *args, **kwargs):
        writes.append(path)
        if len(writes) > 4:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        return put(path, value, *args, **kwargs)

    monkeypatch.setattr(_local, "_put", refused_after_some)
    dest = tmp_path / "v.ome.zarr"
    with pytest.raises(OutputNotWritableError, match=r"`path` '.*v\.ome\.zarr' to stay writable.*Operation not "
                       r"permitted.*" + ("resumes once it can write there again" if resume_key else
                                         "Nothing that looks finished")):
        bigseg.save_volume(data, dest, chunks=8, progress=False, resume_key=resume_key)
    assert not dest.exists()
    np.save(tmp_path / "scan.npy", data)  # ingest says it of its own argument
    writes.clear()
    with pytest.raises(OutputNotWritableError, match=r"^Expected `dest` '.*i\.ome\.zarr' to stay writable"):
        bigseg.ingest(tmp_path / "scan.npy", tmp_path / "i.ome.zarr", chunks=8, progress=False)
    monkeypatch.setattr(_local, "_put", put)
    bigseg.save_volume(data, dest, chunks=8, progress=False, resume_key=resume_key)
    np.testing.assert_array_equal(bigseg.open_volume(dest).values, data)


def test_an_input_that_cannot_be_read_is_not_said_to_be_the_output(tmp_path, monkeypatch):
    """Only the output's own files make "the destination stopped taking writes"."""
    import errno

    import dask.array as da

    def unreadable(block):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "elsewhere" / "scan.raw"))

    data = da.zeros((8, 8, 8), np.float32, chunks=4).map_blocks(unreadable, dtype=np.float32)
    with pytest.raises(PermissionError, match="Permission denied") as caught:
        bigseg.save_volume(data, tmp_path / "v.ome.zarr", progress=False)
    assert not isinstance(caught.value, bigseg.errors.OutputNotWritableError)


def test_a_small_file_stating_a_huge_shape_is_refused_before_the_graph_is_built(tmp_path):
    """A 2 KB HDF5 declaring a 100000³ dataset made ingest build ~5e8 tasks (a MemoryError after
    20 s under 6 GiB; a node's memory without a limit) before reading anything."""
    import time

    import h5py

    with h5py.File(tmp_path / "huge.h5", "w") as f:
        f.create_dataset("exchange/data", shape=(100_000,) * 3, dtype="uint16", chunks=(1, 64, 64))
    assert (tmp_path / "huge.h5").stat().st_size < 100_000
    t = time.perf_counter()
    with pytest.raises(bigseg.errors.InputError, match=r"`chunks` to cut `source` into at most 4,000,000 blocks.*"
                                                       r"\(100000, 100000, 100000\).*478,211,768 blocks"):
        bigseg.ingest(tmp_path / "huge.h5", tmp_path / "out.ome.zarr", progress=False)
    assert time.perf_counter() - t < 30 and not list(tmp_path.glob("*out.ome.zarr*"))
