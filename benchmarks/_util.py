"""Helpers shared by the benchmarks: run a case in a fresh subprocess and read its peak RSS.

Peak RSS is the child's own ``VmHWM`` (``/proc/self/status``), never ``ru_maxrss``: Linux
carries a process's high-water mark across fork + exec, so a case started by a benchmark
that has built a large input reports at least the benchmark's own RSS (a 771 MiB floor under
every ``predict`` figure, found and fixed 2026-12-01)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

#: Code for a case's child process: defines ``peak_rss_mib()``, that process's own peak RSS.
PEAK_RSS = """
def peak_rss_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # not Linux: ru_maxrss (may include the parent's peak)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def run_case(code: str, *, env: dict | None = None, timeout: float | None = None) -> dict:
    """Run Python ``code`` in a new interpreter; it must print one JSON line last.

    Returns that JSON plus ``peak_rss_mib``: the child's own peak RSS (``VmHWM``, see
    :data:`PEAK_RSS`), read as the child ends, and ``wall_s``.
    """
    wrapped = PEAK_RSS + code + "\nimport json as _j; print(_j.dumps({'__peak_rss_mib': peak_rss_mib()}))\n"
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=timeout)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"benchmark case failed:\n{out.stderr[-3000:]}")
    lines = out.stdout.strip().splitlines()
    result = json.loads(lines[-2])
    result["peak_rss_mib"] = round(json.loads(lines[-1])["__peak_rss_mib"], 1)
    result["wall_s"] = round(wall, 2)
    return result


def fresh_workdir(path: str | os.PathLike) -> Path:
    """An empty scratch folder for one benchmark run (whatever an earlier run left is removed)."""
    import shutil

    work = Path(path)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


#: packages recorded with every result besides those of bigseg's own record (``bigseg._version.environment``)
BENCH_PACKAGES = ("monai", "dask-image")
#: environment variables that set a run's threads, recorded where set
THREAD_VARS = ("THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "DASK_NUM_WORKERS")


def machine() -> dict:
    """What the figures were measured on and with: CPU model, cores (and those this process may
    use), thread settings, package versions and the checkout's commit (bigseg's own record of a
    run, :func:`bigseg._version.environment`, and what only a benchmark needs; was: ``x86_64``,
    the core count and Python's version only)."""
    from importlib import metadata

    from bigseg._version import environment

    env = environment()
    versions = {"bigseg": env["bigseg"], **{k: v for k, v in env["packages"].items() if v}}
    for name in BENCH_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": env["machine"]["processor"], "arch": platform.machine(), "cores": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "threads_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
            "python": env["python"], "versions": versions, "commit": env["git_commit"],
            "date": time.strftime("%Y-%m-%d")}


def recording(env: dict[str, str] | None = None) -> bool:
    """Whether this run replaces the committed ``results/<name>.json`` (the figures README quotes):
    the script's reference run (no arguments, as ``make bench`` runs it), ``--merge`` (predict's
    documented way to update its rows) or ``BENCH_RECORD=1``. Any other run (a quick ``--sizes 32``
    check, another machine's ``--threads 16``) goes to ``results/<name>.local.json`` (git-ignored):
    was written over the committed results without a word. ``env``: the environment variables
    that size a benchmark configured by them, with their defaults (``{"SHAPE": "48,128,128"}``):
    one set to another value (a quick ``SHAPE=16,32,32`` check) is such another run too."""
    if os.environ.get("BENCH_RECORD") == "1":
        return True
    if any(os.environ.get(k, v) != v for k, v in (env or {}).items()):
        return False
    return not sys.argv[1:] or "--merge" in sys.argv[1:]


def no_options(doc: str | None) -> None:
    """The command line of a benchmark configured by environment variables only: ``--help``
    prints its docstring (and runs nothing); any other argument is refused rather than ignored
    (``--sizes 32`` ran the whole benchmark, minutes, and wrote over its committed results)."""
    import argparse

    argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()


def save(name: str, payload: dict, *, env: dict[str, str] | None = None) -> Path:
    RESULTS.mkdir(exist_ok=True)
    record = recording(env)
    path = RESULTS / (f"{name}.json" if record else f"{name}.local.json")
    info = machine()
    if isinstance(payload.get("machine"), str):  # a script's own words on it ("shared with other jobs"): kept beside
        payload = {**payload, "machine": {**info, "note": payload["machine"]}}  # was: replaced the record above
    path.write_text(json.dumps({"machine": info, "argv": sys.argv[1:], **payload}, indent=2))
    if not record:
        print(f"(results/{name}.json, the committed reference run, left as it was: this run has other arguments "
              f"or settings; "
              f"BENCH_RECORD=1 replaces it)", file=sys.stderr)
    return path
