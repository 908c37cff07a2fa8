"""Files received from elsewhere (a collaborator's store, a shared folder that ``bigseg watch`` reads)
cannot make bigseg read without end, hang, take all memory or read other files of the machine: a zarr
chunk or metadata file that is a FIFO or a link to a device, a store declaring a huge chunk, an HDF5
dataset whose external raw file, external link or virtual source lies outside its folder are refused
by name before any read (QA: security audit of untrusted inputs)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import dask
import h5py
import dask.array as da
import numpy as np
import pytest
import zarr

import bigseg
from bigseg.errors import InputError, MemoryBudgetError, VolumeFormatError
from bigseg.io._ingest import read_source, source_info
from bigseg.io._omezarr import volume_info


def _in_time(fn, fifos=(), seconds=5.0):
    """What ``fn()`` raised, within ``seconds``: a read still waiting then fails the test, each of
    ``fifos`` removed (no later read waits) once opened for writing, and closed, so that the reads
    waiting on it end instead of holding pytest at its exit (zarr's threads are joined there)."""
    got: list = []

    def run():
        try:
            fn()
            got.append(None)
        except BaseException as exc:  # noqa: BLE001 (handed to the test)
            got.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        ends = [os.open(fifo, os.O_RDWR | os.O_NONBLOCK) for fifo in fifos]  # (both ends: never waits)
        for fifo in fifos:
            os.remove(fifo)
        time.sleep(0.2)
        for fd in ends:  # the readers waiting to open it got a writer; now end-of-file
            os.close(fd)
        worker.join(5)
        pytest.fail(f"still reading after {seconds} s (a FIFO or device read as a chunk or metadata file)")
    return got[0]


def _chunk_files(root):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
                  if f not in ("zarr.json", ".zarray", ".zattrs", ".zgroup"))


def _plain(path, zarr_format):
    arr = zarr.create_array(str(path), shape=(8, 8, 8), chunks=(4, 4, 4), dtype="u1", zarr_format=zarr_format)
    arr[:] = 1
    return path


@pytest.mark.parametrize("kind", ["ome", "v3", "v2"])
def test_a_chunk_that_is_a_fifo_is_refused_not_waited_for(tmp_path, kind):
    path = tmp_path / "s.zarr"
    if kind == "ome":
        bigseg.save_volume(np.ones((8, 8, 8), np.uint8), path, chunks=4, progress=False)
    else:
        _plain(path, 3 if kind == "v3" else 2)
    fifo = _chunk_files(path)[1]
    os.remove(fifo)
    os.mkfifo(fifo)
    for read in (lambda: bigseg.open_volume(path).compute(), lambda: bigseg.ingest(path, tmp_path / "o.ome.zarr",
                                                                                  voxel_size=1, progress=False)):
        exc = _in_time(read, [fifo])
        assert isinstance(exc, VolumeFormatError), exc
        assert "FIFO" in str(exc) and str(path) in str(exc) and os.path.relpath(fifo, path)[-5:] in str(exc)
    assert not (tmp_path / "o.ome.zarr").exists()


@pytest.mark.parametrize("name", ["zarr.json", ".zarray"])
def test_metadata_that_is_a_fifo_is_refused_at_open(tmp_path, name):
    path = _plain(tmp_path / "s.zarr", 3 if name == "zarr.json" else 2)
    fifo = path / name
    os.remove(fifo)
    os.mkfifo(fifo)
    for read in (lambda: bigseg.open_volume(path), lambda: volume_info(path)):
        exc = _in_time(read, [fifo])
        assert isinstance(exc, VolumeFormatError) and f"Got {name!r}, a FIFO" in str(exc), exc


def test_a_chunk_linked_to_dev_zero_is_refused_not_read_without_end(tmp_path):
    """In a process of bounded memory and time: without the check the read takes all of either."""
    ome, plain = tmp_path / "s.ome.zarr", tmp_path / "p.zarr"
    bigseg.save_volume(np.ones((8, 8, 8), np.uint8), ome, chunks=4, progress=False)
    _plain(plain, 3)
    for store in (ome, plain):
        chunk = _chunk_files(store)[0]
        os.remove(chunk)
        os.symlink("/dev/zero", chunk)
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))
        import bigseg
        from bigseg.io._omezarr import volume_info
        for read in (lambda: bigseg.open_volume({str(ome)!r}).compute(), lambda: volume_info({str(ome)!r}),
                     lambda: bigseg.open_volume({str(plain)!r}).compute()):
            try:
                read()
                print("READ")
            except bigseg.errors.VolumeFormatError as exc:
                print("REFUSED", exc)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("REFUSED") for line in lines), (done.stdout, done.stderr[-2000:])
    assert all("a link out of the store, to '/dev/zero'" in line for line in lines)


def test_a_link_to_a_regular_chunk_inside_the_store_still_reads(tmp_path):
    path = _plain(tmp_path / "p.zarr", 3)
    first, second = _chunk_files(path)[:2]
    os.remove(second)
    os.symlink(first, second)  # e.g. a deduplicating copy
    assert int(bigseg.open_volume(path).sum()) == 8**3


def test_a_store_declaring_a_huge_chunk_is_refused_at_open(tmp_path):
    """A few hundred bytes declaring one 4096³ chunk (its fill value, never written): 64 GiB at the
    first read, refused before any."""
    path = tmp_path / "bomb.zarr"
    zarr.create_array(str(path), shape=(4096,) * 3, chunks=(4096,) * 3, dtype="u1", fill_value=0)
    for name, read in (("path", lambda: bigseg.open_volume(path)), ("source", lambda: read_source(path)),
                       ("source", lambda: bigseg.ingest(path, tmp_path / "out.ome.zarr", progress=False))):
        with pytest.raises(InputError, match=rf"`{name}` .*chunks of \(4096, 4096, 4096\) uint8 decode to 64\.0 "
                                             r"GiB each.*Rechunk it"):  # (ingest's named `path`, not its `source`)
            read()
    assert not (tmp_path / "out.ome.zarr").exists()


def test_ordinary_stored_chunks_still_open(tmp_path):
    slices = zarr.create_array(str(tmp_path / "s.zarr"), shape=(4, 2048, 2048), chunks=(1, 2048, 2048), dtype="f4")
    assert bigseg.open_volume(tmp_path / "s.zarr").shape == slices.shape  # 16 MiB a chunk
    blocks = zarr.create_array(str(tmp_path / "b.zarr"), shape=(512,) * 3, chunks=(256,) * 3, dtype="f4")
    assert bigseg.open_volume(tmp_path / "b.zarr").shape == blocks.shape  # 64 MiB a chunk, as bigseg writes


def test_an_hdf5_dataset_declaring_a_huge_chunk_is_refused_at_open(tmp_path):
    with h5py.File(tmp_path / "bomb.h5", "w") as f:
        f.create_dataset("exchange/data", shape=(1024,) * 3, chunks=(1024,) * 3, dtype="u2", compression="gzip")
        f.create_dataset("slices", shape=(4, 512, 512), chunks=(1, 512, 512), dtype="u2")
    with pytest.raises(InputError, match=r"`source`.*chunks of \(1024, 1024, 1024\) uint16 decode to 2\.0 GiB"):
        read_source(tmp_path / "bomb.h5")
    assert read_source(tmp_path / "bomb.h5", dataset="slices").shape == (4, 512, 512)


def test_a_run_counts_the_sources_stored_chunk_in_its_memory_check(tmp_path):
    """A stored chunk that fits the cap but not the workers: the run says to rechunk the source,
    not to use smaller chunks of its own (which would not help)."""
    zarr.create_array(str(tmp_path / "s.zarr"), shape=(512,) * 3, chunks=(512,) * 3, dtype="f4")
    with dask.config.set({"distributed.worker.memory.limit": "900MiB"}):
        with pytest.raises(MemoryBudgetError, match=r"stored in chunks of \(512, 512, 512\) \(512\.0 MiB each"):
            bigseg.Pipeline(chunks=64)._check_memory(str(tmp_path / "s.zarr"))


def test_a_chunked_hdf5_source_s_stored_chunk_counts_in_the_memory_check(tmp_path):
    """As a zarr store's: a chunked HDF5 dataset's reads decode whole chunks, but its chunks were
    not counted (a run on workers too small for them was accepted, then killed)."""
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("data", shape=(512,) * 3, chunks=(512,) * 3, dtype="f4")
    with dask.config.set({"distributed.worker.memory.limit": "900MiB"}):
        with pytest.raises(MemoryBudgetError, match=r"stored in chunks of \(512, 512, 512\) \(512\.0 MiB each"):
            bigseg.Pipeline(chunks=64)._check_memory(str(tmp_path / "s.h5"))
        with pytest.raises(MemoryBudgetError, match=r"stored in chunks of \(512, 512, 512\)"):
            bigseg.ingest(tmp_path / "s.h5", tmp_path / "out.ome.zarr", chunks=64, progress=False)
    assert not (tmp_path / "out.ome.zarr").exists()


# -- HDF5: other files of the machine -------------------------------------------------------------


def _raw_file(path, fill):
    np.full(4 * 4 * 4, fill, np.uint8).tofile(path)
    return path


@pytest.fixture
def folders(tmp_path, monkeypatch):
    src, other = tmp_path / "src", tmp_path / "other"
    (src / "sub").mkdir(parents=True)
    other.mkdir()
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # reads do not depend on the working directory
    return src, other


@pytest.mark.parametrize("where", ["/etc/passwd", "absolute", "../other/raw.bin"])
def test_hdf5_external_raw_storage_outside_its_folder_is_refused(folders, where):
    src, other = folders
    _raw_file(other / "raw.bin", 9)
    name = str(other / "raw.bin") if where == "absolute" else where
    with h5py.File(src / "scan.h5", "w") as f:
        f.create_dataset("exchange/data", shape=(4, 4, 4), dtype=np.uint8, external=[(name, 0, h5py.h5f.UNLIMITED)])
    shown = "/etc/passwd" if where == "/etc/passwd" else str((other / "raw.bin").resolve())
    with pytest.raises(VolumeFormatError, match=r"`source` .*scan\.h5.*'exchange/data'|`source` .*scan\.h5.*"
                                                r"'/exchange/data'") as err:
        read_source(src / "scan.h5")
    assert f"stored in the external raw file {shown!r}, outside it" in str(err.value)
    with pytest.raises(VolumeFormatError, match="external raw file"):
        bigseg.ingest(src / "scan.h5", src / "out.ome.zarr", voxel_size=1, progress=False)
    assert not (src / "out.ome.zarr").exists()


def test_hdf5_external_raw_storage_in_its_folder_is_read(folders):
    src, _ = folders
    _raw_file(src / "sub" / "raw.bin", 3)
    with h5py.File(src / "scan.h5", "w") as f:
        f.create_dataset("exchange/data", shape=(4, 4, 4), dtype=np.uint8,
                         external=[("sub/raw.bin", 0, h5py.h5f.UNLIMITED)])
    reader = read_source(src / "scan.h5")
    assert (reader[:, :, :] == 3).all()  # named relative to the file, read from any working directory


def _data_file(path, fill):
    with h5py.File(path, "w") as g:
        g["d"] = np.full((4, 4, 4), fill, np.uint8)


def test_hdf5_external_links_outside_its_folder_are_refused_inside_read(folders):
    src, other = folders
    _data_file(other / "data.h5", 9)
    _data_file(src / "sub" / "data.h5", 2)
    with h5py.File(src / "master.h5", "w") as f:
        f["entry/outside"] = h5py.ExternalLink("../other/data.h5", "/d")
        f["entry/inside"] = h5py.ExternalLink("sub/data.h5", "/d")
        f["x"] = h5py.ExternalLink(str(other / "data.h5"), "/")
        f["entry/soft"] = h5py.SoftLink("/x/d")  # a soft link through an external one
    for dataset in ("/entry/outside", "/entry/soft"):
        with pytest.raises(VolumeFormatError, match=rf"dataset '{dataset}': reached through an external link to "
                                                    rf"'{other / 'data.h5'}', outside it"):
            read_source(src / "master.h5", dataset=dataset)
    assert (read_source(src / "master.h5", dataset="/entry/inside")[:, :, :] == 2).all()
    listed = source_info(src / "master.h5", dataset="/entry/inside")["datasets"]
    assert list(listed) == ["/entry/inside"]  # the files outside not opened to list theirs


def test_hdf5_virtual_datasets_of_files_outside_its_folder_are_refused_inside_read(folders):
    src, other = folders
    _data_file(other / "data.h5", 9)
    _data_file(src / "sub" / "data.h5", 2)
    for name, target in (("out.h5", "../other/data.h5"), ("in.h5", "sub/data.h5")):
        layout = h5py.VirtualLayout(shape=(4, 4, 4), dtype=np.uint8)
        layout[:] = h5py.VirtualSource(target, "d", shape=(4, 4, 4))
        with h5py.File(src / name, "w") as f:
            f.create_virtual_dataset("exchange/data", layout)
    with pytest.raises(VolumeFormatError, match=rf"a virtual dataset of '{other / 'data.h5'}', outside it"):
        read_source(src / "out.h5")
    assert (read_source(src / "in.h5")[:, :, :] == 2).all()


def test_bigseg_writes_no_chunk_it_would_refuse_to_read(tmp_path, monkeypatch):
    """The read refuses stored chunks over MAX_STORED_CHUNK, but a write took any `chunks` (e.g.
    1024³ float32: 4 GiB) or an array's own single huge block: bigseg wrote stores it then
    refused to open. Now given chunks are refused before any write, an array's own halved."""
    import bigseg
    from bigseg.errors import InputError
    from bigseg.io import _omezarr

    monkeypatch.setattr(_omezarr, "MAX_STORED_CHUNK", 4096)  # (16³ float32 blocks: 16 KiB)
    data = np.random.default_rng(0).random((16, 16, 16)).astype(np.float32)
    with pytest.raises(InputError, match=r"`chunks` whose blocks of float32 take at most 4.0 KiB.*Got \(16, 16, 16\)"):
        bigseg.save_volume(data, tmp_path / "a.ome.zarr", chunks=16, progress=False)
    assert not (tmp_path / "a.ome.zarr").exists()
    bigseg.save_volume(da.from_array(data, chunks=16), tmp_path / "b.ome.zarr", progress=False)  # its own: halved
    back = bigseg.open_volume(tmp_path / "b.ome.zarr")
    assert np.prod([max(c) for c in back.data.chunks]) * 4 <= 4096
    np.testing.assert_array_equal(back.values, data)
