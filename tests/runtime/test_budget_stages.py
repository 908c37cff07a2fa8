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
    # the footprint it checks: the block with its halo twice and three float32 arrays (20 B per voxel)
    assert (edge + 2 * halo) ** 3 * 20 <= usable < (edge + 16 + 2 * halo) ** 3 * 20


def test_ingest_refuses_chunks_that_do_not_fit_before_reading(tmp_path):
    np.save(tmp_path / "scan.npy", np.zeros((128, 128, 128), np.float32))
    dest = tmp_path / "scan.ome.zarr"
    with dask.config.set({"distributed.worker.memory.limit": "500MiB"}):
        with pytest.raises(MemoryBudgetError, match=r"ingest with chunks \(128, 128, 128\) needs an estimated "
                                                    r"24\.1 MiB.*Use chunks of at most (\d+) voxels") as e:
            bigseg.ingest(tmp_path / "scan.npy", dest, chunks=128, progress=False)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.npy"]  # nothing written
        edge = int(str(e.value).split("at most ")[1].split()[0])
        vol = bigseg.ingest(tmp_path / "scan.npy", dest, chunks=edge, progress=False)
    assert vol.data.chunksize == (edge,) * 3 and 16 <= edge < 128
