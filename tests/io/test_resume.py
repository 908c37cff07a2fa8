"""Block-level resume of a label write (``save_labels(resume_key=)``, the pipeline's
segmentation): an interrupted write keeps the blocks it finished in a hidden folder and
never looks finished; writing the same key again computes only the rest and gives what an
uninterrupted write gives; another key starts over."""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import pytest

from bigseg.errors import BigsegError
from bigseg.io import open_volume, save_labels, save_volume

CHUNKS = (7, 11, 13)


def _after_a_block_is_marked(folder, timeout=20.0):
    """Wait until some block under ``folder`` is marked as on disk (the lost worker goes down
    while the others are writing), at most ``timeout`` seconds."""
    import time

    end = time.monotonic() + timeout
    while not list(folder.rglob(".blocks-done/*")) and time.monotonic() < end:
        time.sleep(0.02)


class Counted:
    """A lazy label volume whose blocks are counted as they are computed, and one of which
    fails while ``fail`` is set (a crash in the middle of a write)."""

    def __init__(self, img: np.ndarray, folder, fail_at=(1, 1, 1)):
        self.img, self.folder, self.fail_at, self.fail = img, folder, fail_at, True
        self.calls: list[tuple[int, ...]] = []
        self._lock = threading.Lock()

    def _block(self, b, block_info=None):
        idx = tuple(block_info[0]["chunk-location"])
        with self._lock:
            self.calls.append(idx)
        if self.fail and idx == self.fail_at:
            if self.folder is not None:
                _after_a_block_is_marked(self.folder)
            raise RuntimeError("worker lost")
        return (b * 3).astype(np.uint8)

    def array(self) -> da.Array:
        return da.from_array(self.img, chunks=CHUNKS).map_blocks(self._block, dtype=np.uint8)


@pytest.fixture
def image(tmp_path):
    img = np.random.default_rng(0).random((20, 30, 40)).astype(np.float32)
    path = tmp_path / "scan.ome.zarr"
    save_volume(img, path, progress=False)
    return img, path


def _save(arr, path, key, levels=2):
    return save_labels(arr, path, name="seg", phases=["a", "b", "c"], chunks=CHUNKS, levels=levels, resume_key=key,
                       progress=False, overwrite=True)


def test_an_interrupted_write_resumes_where_it_stopped(image, capsys):
    img, path = image
    want = (img * 3).astype(np.uint8)
    vol = Counted(img, path)
    with pytest.raises(RuntimeError, match="worker lost"):
        _save(vol.array(), path, "run-1")
    assert not (path / "labels" / "seg").exists()  # nothing that looks finished
    with pytest.raises(BigsegError):
        open_volume(path / "labels" / "seg")
    hidden = [p for p in (path / "labels").iterdir() if p.name.startswith(".seg.partial-")]
    assert len(hidden) == 1
    marked = {p.name for p in (hidden[0] / ".blocks-done").iterdir()}
    assert marked and "1.1.1" not in marked
    # a block on disk whose marker was never written (killed between the two) is done again
    lost = sorted(marked)[0]
    (hidden[0] / ".blocks-done" / lost).unlink()
    vol.fail, vol.calls = False, []
    capsys.readouterr()
    _save(vol.array(), path, "run-1")
    total = 3 * 3 * 4
    # said without a progress bar too (it was only the bar's label)
    assert f"(resuming: {len(marked) - 1} of {total} blocks on disk)" in capsys.readouterr().err
    assert len(vol.calls) == total - len(marked) + 1 and tuple(map(int, lost.split("."))) in vol.calls
    out = open_volume(path / "labels" / "seg")
    np.testing.assert_array_equal(out.values, want)
    np.testing.assert_array_equal(open_volume(path / "labels" / "seg", level=1).values, want[::2, ::2, ::2])
    assert out.attrs["phases"] == ["a", "b", "c"]
    assert not [p for p in (path / "labels").iterdir() if p.name.startswith(".")]  # the manifest went with it


def test_a_resumed_write_stores_every_chunk(image):
    """Blocks of fill values (0) are stored on resume too: the array states every chunk is on disk, and
    one missing is read as damage (zarr's own default skips them)."""
    img, path = image
    vol = Counted(np.zeros_like(img), path)
    with pytest.raises(RuntimeError, match="worker lost"):
        _save(vol.array(), path, "run-1")
    vol.fail = False
    _save(vol.array(), path, "run-1")
    np.testing.assert_array_equal(open_volume(path / "labels" / "seg").values, 0)


def test_another_key_starts_over(image):
    img, path = image
    vol = Counted(img, path)
    with pytest.raises(RuntimeError):
        _save(vol.array(), path, "model A")
    vol.fail, vol.calls = False, []
    _save(vol.array(), path, "model B")  # other inputs: nothing of A's write is taken
    assert len(vol.calls) == 3 * 3 * 4
    assert [p.name for p in (path / "labels").iterdir() if p.name.startswith(".")] == []


def test_without_a_key_a_failed_write_leaves_nothing(image):
    img, path = image
    vol = Counted(img, None)
    with pytest.raises(RuntimeError):
        save_labels(vol.array(), path, name="seg", phases=["a", "b", "c"], progress=False)
    assert sorted(p.name for p in (path / "labels").iterdir()) == ["zarr.json"]
    # a process killed mid-write cleans up nothing: the next write of the same output removes
    # what it left (under the output's lock no write of it runs), not a resumable one's blocks
    (path / "labels" / ".seg.partial-0123abcd" / "0").mkdir(parents=True)
    (path / "labels" / ".seg.partial-r0123abcd").mkdir()
    save_labels((img * 3).astype(np.uint8), path, name="seg", phases=["a", "b", "c"], progress=False)
    assert sorted(p.name for p in (path / "labels").iterdir()) == [".seg.partial-r0123abcd", "seg", "zarr.json"]


def _losing_a_worker(monkeypatch, folder, module=None, name: str = "segment") -> dict:
    """``module.name`` (default ``bigseg.infer.segment``) made to lose a worker at block
    (1, 1, 1) of its output (the labels of a Dataset, or the array itself; once some block is
    on disk) while ``state["fail"]``; ``state["calls"]`` counts the output blocks computed."""
    import xarray as xr

    if module is None:
        import bigseg.infer as module
    real = getattr(module, name)
    state = {"fail": True, "calls": 0}

    def block(b, block_info=None):
        where = tuple(block_info[0]["chunk-location"])  # (dask's call for the output's meta stops here)
        state["calls"] += 1
        if state["fail"] and where == (1, 1, 1):
            _after_a_block_is_marked(folder)
            raise RuntimeError("worker lost")
        return b

    def flaky(*args, **kwargs):
        out = real(*args, **kwargs)
        arr = out["labels"] if isinstance(out, xr.Dataset) else out
        arr = arr.copy(data=arr.data.map_blocks(block, dtype=arr.dtype))
        if isinstance(out, xr.Dataset):
            out["labels"] = arr
            return out
        return arr

    monkeypatch.setattr(module, name, flaky)
    return state


@pytest.mark.slow
def test_pipeline_resumes_an_interrupted_segmentation(tmp_path, monkeypatch):
    """The segmentation stage fails half way (a lost worker); run again, it computes only the
    blocks that were not on disk, and the labels equal those of a run that was never
    interrupted."""
    from bigseg import synth
    from bigseg.pipeline import Pipeline

    truth = synth.electrode((24, 32, 40), seed=1, chunks=16)
    image = synth.xct(truth, seed=1).compute()
    pipe = Pipeline(chunks=(12, 16, 20), measure={"particles": False})
    clean = pipe.run(image, tmp_path / "clean")
    state = _losing_a_worker(monkeypatch, tmp_path)
    with pytest.raises(RuntimeError, match="worker lost"):
        pipe.run(image, tmp_path / "run")
    first = state["calls"]
    state.update(fail=False, calls=0)
    res = pipe.run(image, tmp_path / "run")
    assert 0 < state["calls"] < 8 and first + state["calls"] >= 8  # 2 x 2 x 2 blocks
    np.testing.assert_array_equal(open_volume(res.labels).values, open_volume(clean.labels).values)


def test_cli_segment_resumes_the_same_command(tmp_path, monkeypatch):
    """`bigseg segment` interrupted half way: the same command again computes only the blocks
    not on disk and writes what an uninterrupted run writes; a changed option starts over."""
    from bigseg import synth
    from bigseg.cli import main

    src = tmp_path / "scan.ome.zarr"
    save_volume(synth.xct(synth.electrode((24, 32, 40), seed=2, chunks=16), seed=2).compute(), src,
                chunks=(12, 16, 20), progress=False)
    assert main(["segment", str(src), "--model", "default", "--name", "clean", "--no-progress"]) == 0
    state = _losing_a_worker(monkeypatch, tmp_path)
    command = ["segment", str(src), "--model", "default", "--no-progress"]
    with pytest.raises(RuntimeError, match="worker lost"):
        main(command)
    assert not (src / "labels" / "segmentation").exists()
    state.update(fail=False, calls=0)
    assert main(command) == 0
    assert 0 < state["calls"] < 8
    np.testing.assert_array_equal(open_volume(src / "labels" / "segmentation").values,
                                  open_volume(src / "labels" / "clean").values)
    # with probabilities and uncertainty (one scratch store for all three): the same
    state.update(fail=True, calls=0)
    with pytest.raises(RuntimeError, match="worker lost"):
        main([*command, "--name", "prob", "--probabilities"])
    assert not (src / "labels" / "prob").exists() and not (src / "labels" / "prob_probabilities").exists()
    state.update(fail=False, calls=0)
    assert main([*command, "--name", "prob", "--probabilities"]) == 0
    assert 0 < state["calls"] < 8
    np.testing.assert_array_equal(open_volume(src / "labels" / "prob").values,
                                  open_volume(src / "labels" / "clean").values)
    p = open_volume(src / "labels" / "prob_probabilities").values.astype(np.float32)
    assert p.shape[0] == 3 and np.allclose(p.sum(axis=0), 1, atol=5e-3)
    assert not [q for q in (src / "labels").iterdir() if q.name.startswith(".")]
    state.update(fail=True, calls=0)
    with pytest.raises(RuntimeError):
        main([*command, "--name", "other"])
    state.update(fail=False, calls=0)
    assert main([*command, "--name", "other", "--overlap", "0.25"]) == 0  # other labels: all blocks again
    assert state["calls"] == 8


def test_cli_filter_resumes_the_same_command(tmp_path, monkeypatch):
    """`bigseg filter` (a new OME-Zarr through save_volume) interrupted half way: the same
    command again writes only the blocks not on disk, equal to an uninterrupted run."""
    import bigseg.filters
    from bigseg.cli import main

    img = np.random.default_rng(1).random((24, 32, 40)).astype(np.float32)
    src = tmp_path / "scan.ome.zarr"
    save_volume(img, src, chunks=(12, 16, 20), progress=False)
    assert main(["filter", str(src), str(tmp_path / "clean.ome.zarr"), "--median", "3", "--no-progress"]) == 0
    state = _losing_a_worker(monkeypatch, tmp_path, bigseg.filters, "median")
    command = ["filter", str(src), str(tmp_path / "f.ome.zarr"), "--median", "3", "--no-progress"]
    with pytest.raises(RuntimeError, match="worker lost"):
        main(command)
    assert not (tmp_path / "f.ome.zarr").exists()
    state.update(fail=False, calls=0)
    assert main(command) == 0
    assert 0 < state["calls"] < 8
    np.testing.assert_array_equal(open_volume(tmp_path / "f.ome.zarr").values,
                                  open_volume(tmp_path / "clean.ome.zarr").values)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_pipeline_resumes_an_interrupted_ingest(tmp_path, monkeypatch):
    """The ingest of a scan file fails half way; the pipeline run again reads only the blocks
    not yet written, and the image equals one ingested in one go."""
    import bigseg.io._ingest as ingest_module
    from bigseg.pipeline import Pipeline

    img = np.random.default_rng(2).random((24, 32, 40)).astype(np.float32)
    np.save(tmp_path / "scan.npy", img)
    pipe = Pipeline(chunks=(12, 16, 20), predict={"model": "threshold"}, measure={"particles": False})
    state = _losing_a_worker(monkeypatch, tmp_path, ingest_module, "_read_volume")
    with pytest.raises(RuntimeError, match="worker lost"):
        pipe.run(tmp_path / "scan.npy", tmp_path / "run")
    assert not (tmp_path / "run" / "image.ome.zarr").exists()
    state.update(fail=False, calls=0)
    res = pipe.run(tmp_path / "scan.npy", tmp_path / "run")
    assert 0 < state["calls"] < 8
    np.testing.assert_array_equal(open_volume(res.image).values, img)
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")]


def test_cli_ingest_resumes_the_same_command(tmp_path, monkeypatch):
    """`bigseg ingest` interrupted half way: the same command again reads only the blocks not
    on disk; a source file written since starts over."""
    import os

    import bigseg.io._ingest as ingest_module
    from bigseg.cli import main

    img = np.random.default_rng(3).random((24, 32, 40)).astype(np.float32)
    np.save(tmp_path / "scan.npy", img)
    state = _losing_a_worker(monkeypatch, tmp_path, ingest_module, "_read_volume")
    command = ["ingest", str(tmp_path / "scan.npy"), str(tmp_path / "s.ome.zarr"), "--chunks", "12,16,20",
               "--voxel-size", "50", "--no-progress"]
    with pytest.raises(RuntimeError, match="worker lost"):
        main(command)
    state.update(fail=False, calls=0)
    assert main(command) == 0
    assert 0 < state["calls"] < 8
    np.testing.assert_array_equal(open_volume(tmp_path / "s.ome.zarr").values, img)
    state.update(fail=True, calls=0)
    with pytest.raises(RuntimeError):
        main([*command[:2], str(tmp_path / "t.ome.zarr"), *command[3:]])
    st = os.stat(tmp_path / "scan.npy")
    os.utime(tmp_path / "scan.npy", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file was written again
    state.update(fail=False, calls=0)
    assert main([*command[:2], str(tmp_path / "t.ome.zarr"), *command[3:]]) == 0
    assert state["calls"] == 8


def test_a_glob_stamps_each_file_it_matches(tmp_path):
    """A resume key of a glob source changes when one of its files is written again."""
    import os

    from bigseg.runtime._manifest import path_stamp

    for i in (1, 2, 10):
        (tmp_path / f"s_{i}.tif").write_bytes(b"x")
    glob = str(tmp_path / "s_*.tif")
    before = path_stamp(glob)
    assert [s[0] for s in before] == sorted(str(tmp_path / f"s_{i}.tif") for i in (1, 2, 10))
    os.utime(tmp_path / "s_2.tif", ns=(1, 1))
    assert path_stamp(glob) != before
    assert path_stamp(tmp_path / "s_1.tif")[0] == str(tmp_path / "s_1.tif")  # a plain path: one stamp


def test_a_zarr_source_rewritten_in_place_is_another_source(tmp_path):
    """Chunks written into a zarr store in place (zarr.json untouched) change its resume key: a
    run resumed on it redid nothing and kept the segmentation and metrics of the old data."""
    import zarr

    from bigseg.runtime._manifest import path_stamp

    src = tmp_path / "scan.ome.zarr"
    save_volume(np.arange(8 * 8 * 8, dtype=np.float32).reshape(8, 8, 8), src, chunks=4)
    before = path_stamp(src)
    z = zarr.open_array(str(src / "0"), mode="r+")
    z[:4, :4, :4] = -1.0  # one chunk, in place
    assert path_stamp(src) != before


def test_a_v2_zarr_source_rewritten_in_place_is_another_source(tmp_path):
    """As a v3 store, another writer's OME-Zarr v0.4 (zarr v2, ``.zgroup``, no zarr.json) image:
    its chunks lie in folders, and the stamp of a plain folder's files saw none of them; a
    dangling link or a file removed meanwhile is no traceback."""
    import os

    import zarr

    from bigseg.runtime._manifest import path_stamp

    src = tmp_path / "v04.ome.zarr"
    arr = zarr.open_group(str(src), mode="w", zarr_format=2).create_array("0", shape=(8, 8, 8), chunks=(4, 4, 4),
                                                                          dtype="u2")
    arr[:] = 1
    before = path_stamp(src)
    arr[:4, :4, :4] = 2  # one chunk, in place
    assert path_stamp(src) != before
    os.symlink(tmp_path / "gone", src / "0" / "dangling")
    assert path_stamp(src)[2] == len([f for f in src.rglob("*") if f.is_file()])
