"""`bigseg bench` / bigseg.bench.benchmark: stage timings on a generated electrode, locally and on a cluster."""

from __future__ import annotations

import json

import pytest

from bigseg._version import version as bigseg_version
from bigseg.cli import main
from bigseg.errors import InputError
from bigseg.bench import benchmark


@pytest.fixture
def small_model(tmp_path):
    """An untrained 2-4 channel 3D U-Net checkpoint (the stages' plumbing, not the model's speed)."""
    from bigseg import models

    return str(models.save(models.create("unet3d", channels=(2, 4), patch=(8, 8, 8)), tmp_path / "small.pt"))


def test_cli_bench_times_the_asked_stages(tmp_path, capsys, small_model):
    out = tmp_path / "b.json"
    rc = main(["bench", "--size", "24", "--chunks", "12", "--stages", "filter,particles", "--json", str(out),
               "--workdir", str(tmp_path), "--model", small_model])
    assert rc == 0
    res = json.loads(out.read_text())
    assert list(res["stages"]) == ["filter", "particles"]  # write and segment ran, untimed
    for r in res["stages"].values():
        assert r["seconds"] > 0 and r["mvox_per_s"] == pytest.approx(24 ** 3 / r["seconds"] / 1e6, rel=1e-2)
    captured = capsys.readouterr()
    printed = captured.out
    assert "particles" in printed and "%|" in captured.err  # bars by default
    assert not any(tmp_path.glob("bigseg-bench-*"))  # temporary volumes removed
    assert main(["bench", "--size", "16", "--chunks", "8", "--stages", "filter", "--json", str(out),
                 "--workdir", str(tmp_path)]) == 2  # an existing --json: refused
    assert "`--json` to name a new file or --overwrite" in capsys.readouterr().err
    assert main(["bench", "--size", "16", "--chunks", "8", "--stages", "filter", "--json", str(out), "--overwrite",
                 "--no-progress", "--workdir", str(tmp_path)]) == 0
    assert "%|" not in capsys.readouterr().err and json.loads(out.read_text())["size"] == 16
    # the planning column: how long 10⁹ voxels would take at each stage's rate, and all together
    from bigseg.cli.cmd_bench import _duration

    for stage, r in res["stages"].items():
        line = next(row for row in printed.splitlines() if row.startswith(stage))
        assert line.endswith(_duration(1e3 / r["mvox_per_s"])), line
    total = sum(1e3 / r["mvox_per_s"] for r in res["stages"].values())
    assert any(row.startswith("all") and row.endswith(_duration(total)) for row in printed.splitlines())


def test_duration_reads_as_a_planning_figure():
    from bigseg.cli.cmd_bench import _duration

    assert [_duration(s) for s in (42.4, 210, 7500, 36000)] == ["42 s", "3.5 min", "2 h 05 min", "10 h 00 min"]


def test_bench_passes_the_predict_options(tmp_path, capsys, small_model):
    out = tmp_path / "b.json"
    assert main(["bench", "--size", "20", "--chunks", "10", "--stages", "segment", "--overlap", "0.25",
                 "--autocast", "off", "--batch-size", "3", "--json", str(out), "--workdir", str(tmp_path),
                 "--model", small_model]) == 0
    res = json.loads(out.read_text())
    assert res["predict"] == {"overlap": 0.25, "autocast": "off", "batch_size": 3} and res["peak_rss_mib"] > 50
    assert "overlap 0.25, autocast off, batch_size 3" in capsys.readouterr().out
    assert main(["bench", "--size", "20", "--chunks", "10", "--stages", "segment", "--overlap", "1.5",
                 "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "`--overlap`" in err and "[bench 1/" not in err  # refused before the scan is written


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.filterwarnings("ignore")
def test_bench_on_a_local_cluster(tmp_path):
    import bigseg

    with bigseg.connect("local", n_workers=1, dashboard=False, quiet=True, memory_limit="2GiB"):
        res = benchmark(size=16, chunks=8, stages=["write", "measure"], workdir=tmp_path)
    assert res["environment"]["workers"] == 1 and set(res["stages"]) == {"write", "measure"}
    # as a run's run.json says it: the cluster's kind and its workers' memory (were not recorded)
    assert res["environment"]["cluster"] == "LocalCluster"
    assert res["environment"]["memory_limit_per_worker"] == 2 * 2**30


def test_bad_stages_are_named(tmp_path, capsys):
    assert main(["bench", "--stages", "filter,fft"]) == 2
    assert "`--stages`" in capsys.readouterr().err
    with pytest.raises(InputError, match="`size`"):
        benchmark(size=0)
    # 10^15 voxels: refused before work (was a MemoryError deep in the simulator)
    assert main(["bench", "--size", "100000", "--workdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "`--size` whose volumes fit in the free space of the work folder" in err and "[bench" not in err
    res = benchmark(size=12, chunks=64, stages=["write"], workdir=tmp_path, progress=False)
    assert res["chunks"] == 12  # the chunks used, not the 64 asked for


def test_workdir_is_created_and_left_empty(tmp_path):
    scratch = tmp_path / "scratch" / "bench"
    res = benchmark(size=16, chunks=8, stages=["write"], workdir=scratch)
    assert set(res["stages"]) == {"write"}
    assert res["simulate_s"] > 0  # the simulator's time, apart: write times a copy (it timed both, 10x slower)
    assert scratch.is_dir() and not any(scratch.iterdir())  # its temporary volumes removed after
    # self-describing: what made the figures (was: no bigseg version, commit or dask's)
    env = res["environment"]
    assert env["bigseg"] == bigseg_version() and env["packages"]["distributed"] and "git_commit" in env and env["date"]


def test_first_call_costs_are_not_timed_as_throughput(tmp_path, monkeypatch):
    """Was: on a fresh install or fresh workers the numba kernels compiled inside the timed stages
    (`bigseg bench --size 64`: filter 0.019 Mvox/s, "10⁹ voxels: 14 h 44 min", against 2.96
    Mvox/s and 5.6 min run again). A stage whose first call is slow (compiling) is run once
    untimed first; --no-warmup times it as it comes."""
    import time as _time

    import bigseg.filters

    real, calls = bigseg.filters.median, []

    def median_compiling_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            _time.sleep(2.0)  # as numba compiling the kernel on its first call
        return real(*args, **kwargs)

    monkeypatch.setattr(bigseg.filters, "median", median_compiling_first)
    res = benchmark(size=16, chunks=8, stages=["filter"], workdir=tmp_path, progress=False)
    assert res["stages"]["filter"]["seconds"] < 1.5 and res["warmup_s"] >= 2.0
    calls.clear()
    res = benchmark(size=16, chunks=8, stages=["filter"], workdir=tmp_path, progress=False, warmup=False)
    assert res["stages"]["filter"]["seconds"] >= 2.0 and "warmup_s" not in res
    assert not any(tmp_path.glob("bigseg-bench-*"))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_killed_bench_removes_its_temporary_volumes(tmp_path):
    """Was: `timeout 600 bigseg bench ...` (SIGTERM, as scancel sends) left its bigseg-bench-* folder
    (the scan, its copy, the median and the labels: 13 bytes a voxel) in the temp folder."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.runtime.test_cluster import scheduler_with_workers

    work = tmp_path / "work"
    with scheduler_with_workers(tmp_path, 0) as addr:  # no worker: the bench waits in its first stage
        proc = subprocess.Popen([sys.executable, "-m", "bigseg", "bench", "--size", "16", "--chunks", "8",
                                 "--stages", "write", "--cluster", addr, "--workdir", str(work), "--no-progress"],
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        for line in proc.stderr:
            if line.startswith("[bench"):
                break
        time.sleep(1.0)
        assert any(work.glob("bigseg-bench-*"))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    assert not any(work.glob("bigseg-bench-*"))


def test_repeat_gives_the_median_run_and_the_spread(tmp_path, capsys, monkeypatch):
    """Two 32³ runs on a shared machine differed 3.8× and a single run said nothing of it: with
    --repeat N each stage's figure is the median run's, with every run's seconds and the spread."""
    import itertools

    import bigseg.bench as bench

    fake = itertools.cycle([{"write": 3.0, "simulate": 0.5}, {"write": 1.0, "simulate": 0.7},  # three runs'
                            {"write": 2.0, "simulate": 0.9}])  # seconds
    calls = []

    def runs(tmp, run, size, *args, **kwargs):
        calls.append(tmp)
        return next(fake)

    monkeypatch.setattr(bench, "_run_stages", runs)
    res = bench.benchmark(size=16, chunks=8, stages=["write"], workdir=tmp_path, warmup=False, repeat=3)
    w = res["stages"]["write"]
    assert w["seconds"] == 2.0 and w["seconds_each"] == [3.0, 1.0, 2.0] and w["spread"] == 1.0
    assert w["mvox_per_s"] == pytest.approx(16 ** 3 / 2.0 / 1e6, rel=1e-3) and len(set(calls)) == 3
    assert res["simulate_s"] == 0.7  # the median run's too (was the last run's, 0.9)
    assert "spread" not in bench.benchmark(size=16, chunks=8, stages=["write"], workdir=tmp_path, warmup=False)[
        "stages"]["write"]
    with pytest.raises(InputError, match="`repeat` to be at most 100"):
        bench.benchmark(size=16, stages=["write"], repeat=101)
    assert main(["bench", "--size", "16", "--chunks", "8", "--stages", "write", "--repeat", "3", "--no-warmup",
                 "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "spread" in out and "median of 3 runs" in out and "100%" in out
