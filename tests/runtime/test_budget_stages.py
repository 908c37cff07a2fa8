"""The memory budget of ingest and the filters (was: predict only): chunks whose task cannot fit a
worker are refused before anything is read or written, with chunks that fit; a worker's limit is
what its tasks may use up to dask's restart threshold, less what the worker holds before any data
(an ingest in 512³ chunks killed 1 GiB workers four times before its error)."""

from __future__ import annotations

import dask
import dask.array as da
import distributed  # noqa: F401 (its config defaults loaded before dask.config.set: set drops those loaded inside)
import numpy as np
import psutil
import pytest

import bigseg
from bigseg import filters
from bigseg.errors import MemoryBudgetError
from bigseg.runtime._budget import WORKER_BASELINE, check_budget, worker_memory_limit


def test_a_workers_limit_is_what_its_tasks_may_use():
    with dask.config.set({"distributed.worker.memory.limit": "1GiB"}):
        usable, threads, source = worker_memory_limit()
    assert usable == int(2**30 * 0.95) - WORKER_BASELINE and threads == 1
    assert "95% before it is restarted" in source and "before any data" in source
    with dask.config.set({"distributed.worker.memory.limit": "1GiB", "distributed.worker.memory.terminate": False}):
        assert worker_memory_limit()[0] == 2**30 - WORKER_BASELINE  # no restart threshold: all of it
    assert worker_memory_limit("1GiB")[0] == 2**30  # an explicit limit is the task's own
    # a share of the machine's memory, as dask reads a memory_limit up to 1 (0.5 was 1 byte)
    from distributed.system import MEMORY_LIMIT  # the machine's memory, or its cgroup's limit

    for share in (0.5, "0.5"):
        with dask.config.set({"distributed.worker.memory.limit": share, "distributed.worker.memory.terminate": False}):
            assert worker_memory_limit()[0] == int(0.5 * MEMORY_LIMIT) - WORKER_BASELINE


def test_no_more_tasks_at_once_than_the_graph_has():
    ram = psutil.virtual_memory().total
    with dask.config.set({"num_workers": 8}):  # 8 threads share the machine's memory
        with pytest.raises(MemoryBudgetError, match=r"8 tasks at once"):
            check_budget(ram // 4, what="a stage")
        assert check_budget(ram // 4, what="a stage", tasks=1)[0] == ram // 4  # one block: one task


def _boom(block):
    raise AssertionError("computed")


@pytest.mark.parametrize("name, kw, halo", [("median", {}, 1), ("gaussian", {}, 4),
                                            ("unsharp", {"radius": 2.0}, 8)])
def test_filters_refuse_blocks_that_do_not_fit_before_any_work(name, kw, halo):
    lazy = da.zeros((160, 160, 160), np.float32, chunks=(80, 160, 160)).map_blocks(_boom, dtype=np.float32)
    with dask.config.set({"distributed.worker.memory.limit": "500MiB"}):
        usable = worker_memory_limit()[0]
        with pytest.raises(MemoryBudgetError, match=rf"{name} with chunks \(80, 160, 160\) \(a block and its halo "
                                                    rf"\({80 + 2 * halo}, 160, 160\)\).*Use chunks of at most") as e:
            getattr(filters, name)(lazy, **kw)
        edge = int(str(e.value).split("at most ")[1].split()[0])
        assert 16 <= edge < 160
        getattr(filters, name)(lazy.rechunk(edge), **kw)  # the chunks it names fit
    # the footprint it checks: the block with its halo twice, three float32 arrays and what dask
    # and zarr hold beside (32 B per voxel)
    assert (edge + 2 * halo) ** 3 * 32 <= usable < (edge + 16 + 2 * halo) ** 3 * 32


def test_ingest_refuses_chunks_that_do_not_fit_before_reading(tmp_path):
    np.save(tmp_path / "scan.npy", np.zeros((128, 128, 128), np.float32))
    dest = tmp_path / "scan.ome.zarr"
    with dask.config.set({"distributed.worker.memory.limit": "500MiB"}):
        with pytest.raises(MemoryBudgetError, match=r"ingest with chunks \(128, 128, 128\) needs an estimated "
                                                    r"28\.1 MiB.*Use chunks of at most (\d+) voxels") as e:
            bigseg.ingest(tmp_path / "scan.npy", dest, chunks=128, progress=False)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.npy"]  # nothing written
        edge = int(str(e.value).split("at most ")[1].split()[0])
        vol = bigseg.ingest(tmp_path / "scan.npy", dest, chunks=edge, progress=False)
    assert vol.data.chunksize == (edge,) * 3 and 16 <= edge < 128


def test_filter_budgets_hold_what_a_worker_measured():
    """On a 1 GiB worker (1 thread) unsharp of uint16 in 256³ chunks of a 512³ volume passed the
    check (429 MiB of 513) and peaked at 974.6 MiB, past the 972.8 MiB where the nanny restarts it;
    median in the same chunks peaked at 880 MiB: it stays allowed."""
    lazy = da.zeros((512, 512, 512), dtype=np.uint16, chunks=256).map_blocks(_boom, dtype=np.uint16)
    with dask.config.set({"distributed.worker.memory.limit": "1GiB"}):
        with pytest.raises(MemoryBudgetError, match=r"unsharp with chunks \(256, 256, 256\)"):
            filters.unsharp(lazy)
        filters.median(lazy)  # (lazy: nothing computed)


def test_ingest_budget_holds_what_a_worker_measured(tmp_path):
    """Ingesting uint16 in 256³ chunks held 144-168 MiB beside the worker's own memory (the block
    as read, zarr's and zstd's buffers: ~5x the block), where 3 blocks and a plane were counted
    (96.5 MiB): a worker with 150 MiB for its tasks is refused such chunks."""
    np.save(tmp_path / "scan.npy", np.zeros((256, 256, 256), np.uint16))
    limit = f"{int((150 * 2**20 + WORKER_BASELINE) / 0.95)}B"
    with dask.config.set({"distributed.worker.memory.limit": limit}):
        with pytest.raises(MemoryBudgetError, match=r"ingest with chunks \(256, 256, 256\)"):
            bigseg.ingest(tmp_path / "scan.npy", tmp_path / "scan.ome.zarr", chunks=256, progress=False)
    assert not (tmp_path / "scan.ome.zarr").exists()


def _resident_peak_of(fn):
    """Bytes the resident memory of this process rose by while ``fn()`` ran (Linux: the peak
    reset through /proc/self/clear_refs), with what ``fn`` returned."""
    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("the peak resident memory cannot be reset here")
    before = status("VmRSS")
    out = fn()
    return status("VmHWM") - before, out


def test_raw_and_npy_blocks_are_read_without_mapping_the_file(tmp_path):
    """A block of a .npy (or raw) file costs a worker the block and one plane's rows, not every
    page its rows touch: through a memory map of the file, a 128³ float32 block of 512² planes
    raised the resident memory by 111-134 MiB (14x the block), counted against the worker's limit."""
    from bigseg.io._ingest import MemmapReader

    a = np.random.default_rng(0).integers(0, 60000, (16, 64, 4096), dtype=np.uint16)  # rows of 8 KiB
    np.save(tmp_path / "scan.npy", a)
    reader = MemmapReader(str(tmp_path / "scan.npy"), a.shape, a.dtype, npy=True)
    box = (slice(0, 16), slice(16, 48), slice(100, 132))
    grew, block = _resident_peak_of(lambda: reader[box])
    np.testing.assert_array_equal(block, a[box])
    assert grew < 512 * 2**10  # the block (32 KiB) and its rows (32 x 8 KiB), not 16 planes of 4 KiB pages


@pytest.mark.parametrize("kind", ["npy", "fortran npy", "raw >u2", "raw series", "tiff", "tiff series"])
def test_blocks_read_plane_by_plane_equal_the_file(tmp_path, kind):
    import tifffile

    from bigseg.io._ingest import MemmapReader, MultiPageTiffReader

    rng = np.random.default_rng(1)
    shape = (2, 5, 6, 9) if "series" in kind else (5, 6, 9)
    a = rng.integers(0, 60000, shape).astype(">u2" if "raw" in kind else "<f4")
    path = str(tmp_path / "scan")
    if "npy" in kind:
        np.save(path + ".npy", np.asfortranarray(a) if "fortran" in kind else a)
        reader = MemmapReader(path + ".npy", a.shape, a.dtype, npy=True)
    elif "raw" in kind:
        with open(path, "wb") as f:
            f.write(b"header" + a.tobytes())
        reader = MemmapReader(path, a.shape, a.dtype, offset=6)
    else:
        tifffile.imwrite(path + ".tif", a)
        reader = MultiPageTiffReader(path + ".tif", a.shape, a.dtype.newbyteorder("="))
    lead = (slice(1, 2),) if a.ndim == 4 else ()
    for box in [(slice(1, 4), slice(2, 5), slice(0, 9)), (slice(0, 5), slice(0, 6), slice(3, 8)),
                (slice(2, 2), slice(0, 6), slice(0, 9)), (slice(0, 5, 2), slice(1, 6), slice(0, 4))]:
        block = reader[lead + box]
        np.testing.assert_array_equal(block, a[lead + box])
        assert block.dtype.isnative


def test_a_run_is_refused_before_any_stage_writes_when_a_later_stage_cannot_fit(tmp_path):
    """Ingest and the median fit a worker with 30 MiB for its tasks, predict's 64³ blocks (58 MiB)
    do not: the run is refused before the ingest writes image.ome.zarr (and before a pass over the
    filtered scan for the normalisation's percentiles), not after."""
    np.save(tmp_path / "scan.npy", np.zeros((64, 128, 128), np.uint16))
    dest = tmp_path / "run"
    limit = f"{int((30 * 2**20 + WORKER_BASELINE) / 0.95)}B"
    with dask.config.set({"distributed.worker.memory.limit": limit}):
        with pytest.raises(MemoryBudgetError, match=r"^predict with chunks \(64, 64, 64\)"):
            bigseg.Pipeline(chunks=64).run(tmp_path / "scan.npy", dest, progress=False)
    assert not dest.exists()
    with dask.config.set({"distributed.worker.memory.limit": limit}):  # a filter that cannot fit: said first
        with pytest.raises(MemoryBudgetError, match=r"^gaussian with chunks"):
            bigseg.Pipeline(chunks=64, filters={"gaussian": 12.0}).run(tmp_path / "scan.npy", dest, progress=False)
    assert not dest.exists()


def test_a_runs_refusal_names_the_runs_own_chunks(tmp_path):
    # the stages' hints ("vol.chunk(48) first", "predict(..., chunks=32)") are no lever of a run
    np.save(tmp_path / "scan.npy", np.zeros((64, 128, 128), np.uint16))
    with dask.config.set({"distributed.worker.memory.limit": f"{int((50 * 2**20 + WORKER_BASELINE) / 0.95)}B"}):
        with pytest.raises(MemoryBudgetError, match=r"e\.g\. chunks=32 \(the run's `chunks`: chunks=32, command line "
                                                    r"--chunks 32\), or a smaller batch_size\.$"):
            bigseg.Pipeline(chunks=64).run(tmp_path / "scan.npy", tmp_path / "run", progress=False)
        bigseg.Pipeline(chunks=32)._check_memory(str(tmp_path / "scan.npy"))  # the chunks it names fit
    np.save(tmp_path / "wide.npy", np.zeros((64, 256, 256), np.uint16))
    with dask.config.set({"distributed.worker.memory.limit": f"{int((20 * 2**20 + WORKER_BASELINE) / 0.95)}B"}):
        with pytest.raises(MemoryBudgetError, match=r"^median .*at most (\d+) voxels along z, y and x \(the run's "
                                                    r"`chunks`: chunks=\1, command line --chunks \1\)") as e:
            bigseg.Pipeline(chunks=128).run(tmp_path / "wide.npy", tmp_path / "run", progress=False)
        assert "vol.chunk" not in str(e.value)


def test_a_share_is_of_the_memory_dask_gives_this_process_up_to_all_of_it(monkeypatch):
    """A limit of 1 is all of it (not 1 byte); the memory is distributed's figure (a cgroup's limit
    under SLURM or in a container), not the machine's; True is no share but an error by name."""
    from bigseg.errors import InputError

    monkeypatch.setattr("distributed.system.MEMORY_LIMIT", 8 * 2**30)
    for share, want in ((1, 8 * 2**30), (0.5, 4 * 2**30), ("0.25", 2 * 2**30)):
        with dask.config.set({"distributed.worker.memory.limit": share, "distributed.worker.memory.terminate": False}):
            assert worker_memory_limit()[0] == want - WORKER_BASELINE
    with dask.config.set({"distributed.worker.memory.limit": True}):
        with pytest.raises(InputError, match="`memory_limit`.*True"):
            worker_memory_limit()
