"""bigseg.connect: a real scheduler + workers on 127.0.0.1, LocalCluster, and no leftovers."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import psutil
import pytest

import bigseg
from bigseg.errors import ClusterError, InputError

pytestmark = [pytest.mark.timeout(180), pytest.mark.filterwarnings("ignore")]
DASK = str(Path(sys.executable).with_name("dask"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children() -> set[int]:
    """Live child processes, without Python's own multiprocessing resource tracker (lives until exit)."""
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(p.cmdline()):
                out.add(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out


@contextlib.contextmanager
def scheduler_with_workers(tmp_path, n_workers, worker_env=None):
    """A `dask scheduler` and `n_workers` `dask worker` processes (their environment updated by
    ``worker_env``); yields the scheduler's address, stops them all after."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)]
    for i in range(n_workers):
        procs.append(subprocess.Popen(
            [DASK, "worker", addr, "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1",
             "--no-dashboard", "--local-directory", str(tmp_path / f"w{i}")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**env, **(worker_env or {})}))
    try:
        yield addr
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def scheduler_and_two_workers(tmp_path):
    with scheduler_with_workers(tmp_path, 2) as addr:
        yield addr


@pytest.mark.slow
def test_ingest_through_running_scheduler(tmp_path, odd_volume, scheduler_and_two_workers):
    np.save(tmp_path / "v.npy", odd_volume)
    deadline = time.monotonic() + 60
    with bigseg.connect(scheduler_and_two_workers, timeout=30, quiet=True) as client:
        while len(client.scheduler_info(n_workers=-1)["workers"]) < 2:
            assert time.monotonic() < deadline, "workers did not register"
            time.sleep(0.2)
        vol = bigseg.ingest(tmp_path / "v.npy", tmp_path / "v.ome.zarr", chunks=(10, 17, 30), progress=True)
        # both workers took part in the write
        who = client.run(lambda dask_worker: len(dask_worker.data) + dask_worker.state.executed_count)
        assert len(who) == 2 and all(n > 0 for n in who.values())
    np.testing.assert_array_equal(vol.values, odd_volume)


def test_local_cluster_context_manager_leaves_no_processes(tmp_path, odd_volume, capsys, monkeypatch):
    before = _children()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    with bigseg.connect("local", n_workers=2, memory_limit="1GiB") as client:
        assert os.environ["OMP_NUM_THREADS"] == "1"  # distributed's, for its workers, in this process too
        info = client.scheduler_info(n_workers=-1)
        assert len(info["workers"]) == 2
        assert all(w["memory_limit"] == 2**30 for w in info["workers"].values())
        assert all(w["host"] == "127.0.0.1" for w in info["workers"].values())
        assert len(_children() - before) >= 2  # worker processes, not threads
        np.save(tmp_path / "v.npy", odd_volume)
        vol = bigseg.ingest(tmp_path / "v.npy", tmp_path / "v.ome.zarr", chunks=16, progress=False)
        np.testing.assert_array_equal(vol.values, odd_volume)
        # a notebook cell run again started a second cluster beside the first without a word
        with pytest.warns(UserWarning, match=r"A cluster bigseg started in this process is still running \(http"):
            again = bigseg.connect("local", n_workers=1, quiet=True)
        again.close()
    assert "dashboard: http://127.0.0.1:" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # both closed: a new one starts quietly
        bigseg.connect("local", n_workers=1, quiet=True).close()
    # this process's environment as it was (OMP_NUM_THREADS=1 stayed: later subprocesses, e.g.
    # training's data workers, ran one OpenMP thread)
    assert "OMP_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "3"
    deadline = time.monotonic() + 20
    while _children() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (_children() - before), "worker processes left behind"


def test_connect_errors():
    with pytest.raises(InputError, match="`cluster`"):
        bigseg.connect("nonsense")
    with pytest.raises(InputError, match="`n_workers`"):
        bigseg.connect("local", n_workers=0)
    before = _children()  # was: workers' tracebacks, then "Nanny failed to start", naming nothing
    for threads in (0, -1, "2"):
        with pytest.raises(InputError, match=rf"Expected `threads_per_worker` to be a positive integer. Got {threads!r}"):
            bigseg.connect("local", n_workers=1, threads_per_worker=threads, quiet=True)
    assert _children() == before
    with pytest.raises(InputError, match=r"scheduler address such as 'tcp://host:8786' .*Got 'tpc://10.0.0.1:8786'"):
        bigseg.connect("tpc://10.0.0.1:8786")  # a typo: was distributed's ValueError
    with pytest.raises(InputError, match="an http address is the dashboard's"):
        bigseg.connect("http://127.0.0.1:8787/status")
    with pytest.raises(ClusterError, match="tcp://127.0.0.1"):
        bigseg.connect(f"tcp://127.0.0.1:{_free_port()}", timeout=1, quiet=True)
    before = _children()  # an IPv6 host: named before anything starts (was "Cluster failed to start: invalid address")
    for v6 in ("::1", "[::1]"):
        with pytest.raises(InputError, match=rf"Expected `host` to be an IPv4 address .*Got {re.escape(repr(v6))} instead"):
            bigseg.connect("local", n_workers=1, host=v6, quiet=True)
    with pytest.raises(InputError, match=r"Expected `host` to be an address of this machine .*Got 1 instead"):
        bigseg.connect("local", n_workers=1, host=1, quiet=True)
    assert _children() == before
    before = _children()  # an unknown keyword: named before anything starts (was "Nanny failed to start")
    with pytest.raises(InputError, match=r"keywords of LocalCluster or its workers. Got `bogus_option`=1 instead"):
        bigseg.connect("local", n_workers=1, bogus_option=1, quiet=True)
    assert _children() == before
    # a limit below what an idle worker holds: named before any process starts (was: workers
    # restarted by their nanny in a loop, the run waiting for ever)
    with pytest.raises(InputError, match=r"`memory_limit` to be at least 1.00 GiB per worker.*Got '50MiB'"):
        bigseg.connect("local", n_workers=1, memory_limit="50MiB", quiet=True)
    import psutil

    total = psutil.virtual_memory().total  # together more than the machine: dask capped each one silently
    with pytest.raises(InputError, match=r"`memory_limit` to be at most .* per worker for 2 worker\(s\)"):
        bigseg.connect("local", n_workers=2, memory_limit=total, quiet=True)
    with pytest.raises(InputError, match=r"`n_workers` to be at most \d+ on this machine.*Got 100000"):
        bigseg.connect("local", n_workers=100000, quiet=True)
    assert _children() == before
    with pytest.raises(InputError, match=r"`cluster` to be 'local'.*Got 'lcoal'"):  # the name, not the keyword
        bigseg.connect("lcoal", bogus_option=1)
    with pytest.raises(InputError, match=r"keywords of distributed.Client. Got `n_threads`=2 instead"):
        bigseg.connect(f"tcp://127.0.0.1:{_free_port()}", n_threads=2, timeout=1, quiet=True)
    try:
        import dask_cuda  # noqa: F401
    except ImportError:
        with pytest.raises(ClusterError, match="dask-cuda"):
            bigseg.connect("local-cuda")
    else:
        if bigseg.runtime.gpu_count() == 0:
            with pytest.raises(ClusterError, match="GPU"):
                bigseg.connect("local-cuda")


def test_check_host_refuses_a_blank_host_by_name():
    """A host of blanks (a setting left "  ") is no address: refused by the option's name before
    any start; a name or an IPv4 address is returned as given."""
    from bigseg.runtime._cluster import check_host

    for blank in ("  ", "\t"):
        with pytest.raises(InputError, match=r"Expected `--host` to be an address of this machine .*Got"):
            check_host(blank, "--host")
    assert check_host("0.0.0.0") == "0.0.0.0" and check_host("node-1") == "node-1"


def test_slurm_without_sbatch_says_so(tmp_path, monkeypatch):
    """Was: every submission logged a FileNotFoundError, then a client with no worker waited for ever."""
    pytest.importorskip("dask_jobqueue")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(ClusterError, match="sbatch.*not on this machine's PATH"):
        bigseg.connect("slurm", n_workers=1)


def test_slurm_job_script_from_deploy_yaml(tmp_path, monkeypatch):
    """The SLURM deployment file maps onto dask-jobqueue's job script (no SLURM needed to build it)."""
    pytest.importorskip("dask_jobqueue")
    from bigseg.runtime._cluster import slurm_cluster

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sbatch").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")  # never called here

    cfg = tmp_path / "site.yaml"
    cfg.write_text("slurm: {queue: gpu-a100, account: bat123, cores: 8, processes: 2, memory: 32GiB, walltime: '00:30:00', jobs: 3}\n")
    cluster, jobs = slurm_cluster(cfg)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert jobs == 3
    assert slurm_cluster(cfg, n_workers=2)[1] == 2  # --workers / n_workers: the jobs asked for now (was the file's)
    assert "#SBATCH -p gpu-a100" in script and "#SBATCH -A bat123" in script and "#SBATCH -t 00:30:00" in script
    assert "--nworkers 2" in script
    # a site without partitions or accounts clears the file's: "" (null keeps them)
    cluster, _ = slurm_cluster(cfg, queue="", account="")
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "#SBATCH -p" not in script and "#SBATCH -A" not in script and "#SBATCH -t 00:30:00" in script


def test_slurm_workers_run_the_model_on_their_threads(tmp_path, monkeypatch):
    """Was: the shipped slurm.yaml (16 cores, 4 processes) started workers of 4 threads whose
    nanny set OMP_NUM_THREADS=MKL_NUM_THREADS=1: torch ran one forward pass per process (the
    device lock) on one thread, 4 of the job's 16 cores. The job now exports them as each
    worker's threads (a nanny keeps what its environment sets); a site's own setting is kept."""
    pytest.importorskip("dask_jobqueue")
    from bigseg.runtime._cluster import slurm_cluster

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sbatch").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")  # never called here

    def script(**options):
        cluster, _ = slurm_cluster("slurm", **options)
        try:
            return cluster.job_script()
        finally:
            cluster.close()

    shipped = script()
    assert "--nthreads 4" in shipped and "export OMP_NUM_THREADS=4 MKL_NUM_THREADS=4\n" in shipped
    assert shipped.index("export OMP_NUM_THREADS") < shipped.index("dask_worker")
    assert "NUM_THREADS" not in script(cores=4, processes=4)  # one thread a worker: the nanny's 1
    own = script(job_script_prologue=["export OMP_NUM_THREADS=2"])
    assert "OMP_NUM_THREADS=2" in own and "OMP_NUM_THREADS=4" not in own


def _torch_threads() -> tuple[int, str | None]:
    import torch

    return torch.get_num_threads(), os.environ.get("MKL_NUM_THREADS")


def test_local_workers_of_several_threads_run_the_model_on_them():
    """Was: `bigseg cluster --threads 2` / connect(threads_per_worker=2) started workers whose
    torch had one thread (the nanny's OMP_NUM_THREADS=MKL_NUM_THREADS=1): one forward pass per
    process, on one of its cores."""
    with bigseg.connect("local", n_workers=1, threads_per_worker=2, memory_limit="1GiB", quiet=True) as client:
        assert list(client.run(_torch_threads).values()) == [(2, "2")]


def test_slurm_site_settings_reach_the_job_script_and_typos_are_refused(tmp_path, monkeypatch):
    """A run configuration's site settings (modules, #SBATCH lines) reach the job script; a key
    dask-jobqueue does not take is refused by name before any job (was its ValueError)."""
    pytest.importorskip("dask_jobqueue")
    from bigseg.config import RunConfig
    from bigseg.runtime._cluster import slurm_cluster

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sbatch").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")  # never called here
    cfg = RunConfig.load(environ={}, slurm={"job_script_prologue": ["module load cuda/12.4"],
                                            "job_extra_directives": ["--gres=gpu:1"], "interface": "lo"})
    cluster, _ = slurm_cluster(None, **{k: v for k, v in cfg.slurm.items() if v is not None})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    assert "module load cuda/12.4" in script and "#SBATCH --gres=gpu:1" in script and "--interface lo" in script
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch: refused for the key first
    with pytest.raises(InputError, match=r"`slurm` settings to be keywords of dask-jobqueue's SLURMCluster.*"
                                         r"Got `job_prolog`=\['module load x'\] instead"):
        slurm_cluster(None, job_prolog=["module load x"])


def test_a_bare_shipped_name_beside_a_site_file_of_that_name_says_which_it_read(tmp_path, monkeypatch):
    from bigseg.config import load_deploy

    monkeypatch.chdir(tmp_path)
    (tmp_path / "slurm.yaml").write_text("slurm: {queue: mine}\n")
    with pytest.warns(UserWarning, match=r"'slurm' is bigseg's shipped slurm.yaml; the 'slurm.yaml' here is not read"):
        assert load_deploy("slurm")["slurm"]["queue"] == "batch"
    assert load_deploy("slurm.yaml")["slurm"]["queue"] == "mine"


def test_slurm_workers_below_the_memory_floor_are_refused_before_any_job(tmp_path, monkeypatch):
    """Was: 64GiB over `processes: 128` wrote `--memory-limit 512MiB` into the job script, whose
    workers a nanny restarts in a loop (a local cluster's `memory_limit` is refused so)."""
    pytest.importorskip("dask_jobqueue")
    from bigseg.runtime._cluster import slurm_cluster

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch: refused for the memory first, nothing submitted
    with pytest.raises(InputError, match=r"`slurm.memory` / `slurm.processes` to give each worker at least 1.00 GiB.*"
                                         r"Got memory '2GiB' for 4 process\(es\): 512.00 MiB each"):
        slurm_cluster("slurm", memory="2GiB", processes=4)


def test_a_scheduler_whose_workers_have_too_little_memory_is_refused_by_name():
    """Was: accepted; with bigseg imported the workers sat above dask's pause threshold and the
    run waited for ever, its bar at 0 %."""
    from distributed import LocalCluster

    from bigseg.errors import MemoryBudgetError

    with LocalCluster(n_workers=1, processes=False, memory_limit="300MB", dashboard_address=None) as lc:
        with pytest.raises(MemoryBudgetError, match=r"memory limit of at least 1.00 GiB.*Got 1 of 1 worker\(s\) "
                                                    r"below: \S+ \(286.10 MiB\).*dask worker --memory-limit 4GiB"):
            bigseg.connect(lc.scheduler_address, quiet=True)


@pytest.mark.slow
def test_a_scheduler_whose_workers_lack_bigseg_is_refused_by_name(tmp_path):
    """A worker that cannot import bigseg would fail every task with ModuleNotFoundError: refused
    at connect, naming the worker. The worker here finds a `bigseg` that fails to import first on
    its path (as a worker environment without bigseg would)."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "bigseg.py").write_text("raise ImportError('not installed here')\n")
    with scheduler_with_workers(tmp_path, 1, {"PYTHONPATH": str(shadow)}) as addr:
        from distributed import Client

        deadline = time.monotonic() + 60
        with Client(addr, timeout=30) as probe:
            while len(probe.scheduler_info(n_workers=-1)["workers"]) < 1:
                assert time.monotonic() < deadline, "worker did not register"
                time.sleep(0.2)
        with pytest.raises(ClusterError, match=r"bigseg installed on every worker.*1 of 1 worker\(s\) without it: tcp://"):
            bigseg.connect(addr, timeout=30, quiet=True)


def test_workers_of_another_bigseg_version_are_warned_about(monkeypatch):
    from distributed import LocalCluster

    from bigseg.runtime import _cluster

    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as lc:
        with bigseg.connect(lc.scheduler_address, quiet=True):  # same version: silent (warnings are errors here)
            pass
        monkeypatch.setattr(_cluster, "version", lambda: "0.0.1")  # this process only (the worker shares the rest)
        with pytest.warns(UserWarning, match=r"workers run bigseg .*, this process 0\.0\.1"):
            bigseg.connect(lc.scheduler_address, quiet=True).close()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ctrl_c_of_a_run_on_a_local_cluster_is_one_line(tmp_path, interruptible_bigseg):
    """Ctrl-C in a terminal signals the whole process group: the workers printed their
    KeyboardInterrupt tracebacks and the client dozens of "Task exception was never retrieved"
    before "interrupted". The workers now start with SIGINT ignored (this process shuts them
    down) and the cluster's loggers are silenced on the interrupt."""
    import signal
    import subprocess

    image = bigseg.synth.xct(bigseg.synth.electrode((64, 64, 64), seed=1), seed=1).values
    np.save(tmp_path / "scan.npy", image)
    err = tmp_path / "err.txt"
    cmd = [*interruptible_bigseg, "run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "r"),
           "--cluster", "local", "--workers", "1"]  # interruptible also when this test run ignores SIGINT (nohup, &)
    with open(err, "w") as fh:
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=fh, start_new_session=True)
    deadline = time.monotonic() + 120
    while "writing labels/segmentation" not in err.read_text() and p.poll() is None:
        assert time.monotonic() < deadline, err.read_text()
        time.sleep(0.2)
    time.sleep(0.5)
    assert p.poll() is None, err.read_text()  # still running: the Ctrl-C lands mid-run
    os.killpg(p.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the process and its workers
    assert p.wait(timeout=60) == 130, err.read_text()
    text = err.read_text()
    assert "Traceback" not in text and "never retrieved" not in text and text.rstrip().endswith("interrupted")


@contextlib.contextmanager
def _server_that_is_no_scheduler(reply: bytes | None):
    """A TCP server on 127.0.0.1 that accepts and then says nothing (an HTTP server such as the
    dashboard waits for a request) or sends ``reply`` (another service's bytes)."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    conns = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conns.append(conn)
            if reply is not None:
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"127.0.0.1:{srv.getsockname()[1]}"
    finally:
        srv.close()
        for c in conns:
            c.close()


def test_an_address_that_is_no_schedulers_is_said_not_waited_on(monkeypatch):
    """Was: the dashboard's port given as the scheduler's (127.0.0.1:8787) waited for ever
    (distributed reads the handshake without a timeout); another service's bytes ended in a
    MemoryError traceback (a frame of 3 EiB); an address without its port, distributed's ValueError."""
    from bigseg.runtime import _cluster

    monkeypatch.setattr(_cluster, "HANDSHAKE_TIMEOUT", 1.0)
    with _server_that_is_no_scheduler(None) as addr:
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match=rf"Dask scheduler at `cluster`='{addr}'.*did not answer as a scheduler"):
            bigseg.connect(addr, timeout=5, quiet=True)
        assert time.monotonic() - t0 < 5
    with _server_that_is_no_scheduler(b"HTTP/1.1 404 Not Found\r\nserver: proxy\r\ncontent-length: 0\r\n\r\n") as addr:
        with pytest.raises(ClusterError, match=rf"Dask scheduler at `cluster`='tcp://{addr}'.*answered otherwise"):
            bigseg.connect(f"tcp://{addr}", timeout=5, quiet=True)
    with pytest.raises(InputError, match=r"address with its port.*Got 'tcp://127.0.0.1'"):
        bigseg.connect("tcp://127.0.0.1", timeout=1, quiet=True)


def test_a_job_slurm_refuses_is_said_before_any_is_submitted(tmp_path, monkeypatch):
    """Was: a partition or account SLURM refuses (the commonest site slip) was logged by
    dask-jobqueue as a traceback, then "connected to slurm (0 workers)" and a wait for ever for
    jobs "still queued: see squeue" that were never submitted."""
    pytest.importorskip("dask_jobqueue")
    (tmp_path / "bin").mkdir()
    calls = tmp_path / "calls"
    (tmp_path / "bin" / "sbatch").write_text(
        f"#!/bin/sh\necho \"$@\" >> {calls}\n"
        "echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2\nexit 1\n")
    (tmp_path / "bin" / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    before = _children()
    with pytest.raises(ClusterError, match=r"Expected SLURM to accept the workers' job.*Got from sbatch --test-only: "
                                           r"sbatch: error: .*Invalid partition name specified"):
        bigseg.connect("slurm", n_workers=1, queue="nosuch", quiet=True)
    assert [line.split()[0] for line in calls.read_text().splitlines()] == ["--test-only"]  # nothing submitted
    assert _children() == before


def test_a_cluster_without_dashboard_is_announced_without_one(capsys):
    """connect(dashboard=False) printed "dashboard: http://127.0.0.1:8787/status": the scheduler's
    bare HTTP server, whose pages are 404s."""
    with bigseg.connect("local", n_workers=1, memory_limit="1GiB", dashboard=False):
        pass
    err = capsys.readouterr().err
    assert "dashboard: off (dashboard=False)" in err and "http://" not in err, err


@pytest.mark.parametrize("timeout", [-1, 0, "30", float("nan")])
def test_connect_refuses_a_bad_timeout_by_name(timeout):
    """`timeout=-1` reached the socket ("ValueError: Timeout value out of range", naming nothing)."""
    with pytest.raises(InputError, match=r"Expected `timeout` to be a positive"):
        bigseg.connect("tcp://127.0.0.1:1", timeout=timeout, quiet=True)


def test_local_cuda_checks_the_memory_of_all_its_workers(monkeypatch):
    """local-cuda checked `memory_limit` for one worker: four GPU workers of half the machine's
    memory each were accepted (dask caps each silently: killed, not spilled). As `local`: all of
    them together, one worker per GPU unless `n_workers` says."""
    import sys
    import types

    import psutil

    from bigseg.runtime import _cluster

    made = []

    class LocalCUDACluster:  # (dask-cuda's, faked: no GPU here)
        def __init__(self, **kwargs):
            made.append(kwargs)
            raise RuntimeError("made")

    monkeypatch.setitem(sys.modules, "dask_cuda", types.SimpleNamespace(LocalCUDACluster=LocalCUDACluster))
    monkeypatch.setattr(_cluster, "gpu_count", lambda: 4)
    half = f"{psutil.virtual_memory().total // 2 // 2**20}MiB"
    with pytest.raises(InputError, match=rf"`memory_limit` to be at most .* per worker for 4 worker\(s\).*{half}"):
        _cluster._start("local-cuda", n_workers=None, threads_per_worker=1, memory_limit=half, dash=None,
                                config=None, options={})
    with pytest.raises(RuntimeError, match="made"):  # one worker of half: accepted
        _cluster._start("local-cuda", n_workers=1, threads_per_worker=1, memory_limit=half, dash=None,
                                config=None, options={})
    assert made and made[0]["memory_limit"] == half


def test_a_local_cluster_leaves_no_scratch_folder_and_keeps_a_given_one(tmp_path, monkeypatch):
    """distributed left an empty ``dask-scratch-space`` (two lock files) in the temporary folder
    after every local cluster; the workers now spill into a folder of the cluster's own, removed
    on close. A folder the caller names is theirs: used, and kept."""
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    with bigseg.connect("local", n_workers=1, memory_limit="1GiB", quiet=True) as client:
        dirs = {w["local_directory"] for w in client.scheduler_info(n_workers=-1)["workers"].values()}
        assert all(Path(d).is_relative_to(tmp) for d in dirs), dirs
        assert [p.name[:11] for p in tmp.iterdir()] == ["bigseg-dask"]
    assert list(tmp.iterdir()) == []
    mine = tmp_path / "mine"
    with bigseg.connect("local", n_workers=1, memory_limit="1GiB", quiet=True, local_directory=str(mine)) as client:
        dirs = {w["local_directory"] for w in client.scheduler_info(n_workers=-1)["workers"].values()}
        assert all(Path(d).is_relative_to(mine) for d in dirs), dirs
    assert mine.is_dir() and list(tmp.iterdir()) == []


@pytest.mark.parametrize("first_from", ["main", "thread"])
def test_slurm_leaves_ctrl_c_as_it_was(first_from):
    """dask-jobqueue's runner module sets SIGINT's handler to ``sys.exit()`` as it is imported: a
    script stopped by Ctrl-C after ``connect("slurm")`` (or a run configuration naming SLURM keys)
    ended with exit status 0, and the CLI's stopped note was gone; from another thread than the
    main one it failed. Imported through bigseg, from any thread, the handler stays the one before
    (a fresh process: this one may have imported it already)."""
    pytest.importorskip("dask_jobqueue")
    code = textwrap.dedent("""
        import signal
        def mine(signum, frame):
            raise KeyboardInterrupt
        signal.signal(signal.SIGINT, mine)
        import threading
        from bigseg.runtime._cluster import slurm_keywords
        found = []
        if FIRST == "thread":  # (was "signal only works in main thread")
            thread = threading.Thread(target=lambda: found.append(slurm_keywords()))
            thread.start()
            thread.join()
            assert found and "jobs" in found[0]
        assert "jobs" in slurm_keywords()
        assert signal.getsignal(signal.SIGINT) is mine, signal.getsignal(signal.SIGINT)
        print("kept")
    """)
    done = subprocess.run([sys.executable, "-c", f"FIRST = {first_from!r}\n" + code], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "kept" in done.stdout, done.stderr[-2000:]


@pytest.mark.timeout(120)
def test_no_dashboard_address_with_dashboard_off_is_taken():
    """``dashboard_address=None`` (an optional setting passed on as it is) with ``dashboard=False`` says
    the same as dashboard=False: was refused, "Expected no `dashboard_address` ... Got None"."""
    with bigseg.connect("local", n_workers=1, processes=False, dashboard=False, dashboard_address=None,
                        quiet=True, memory_limit="1GiB") as client:
        assert client.submit(sum, [1, 2]).result() == 3


@pytest.mark.timeout(120)
@pytest.mark.parametrize("host", [None, ""], ids=["none", "empty"])
def test_no_host_given_is_the_default_host(host):
    """``host=None`` or ``""`` (an optional setting passed on as it is) is the default 127.0.0.1, as
    before the IPv6 check: that check refused them ("Expected `host` to be an address ... Got None")."""
    with bigseg.connect("local", n_workers=1, processes=False, dashboard=False, host=host,
                        quiet=True, memory_limit="1GiB") as client:
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert client.submit(sum, [1, 2]).result() == 3
