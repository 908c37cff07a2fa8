"""Helpers shared by the benchmarks: run a case in a fresh subprocess and read its peak RSS."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def run_case(code: str, *, env: dict | None = None, timeout: float | None = None) -> dict:
    """Run Python ``code`` in a new interpreter; it must print one JSON line last.

    Returns that JSON plus ``peak_rss_mib``: the child's maximum resident set size
    (``getrusage(RUSAGE_CHILDREN)``, which includes worker processes it started and waited for).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, timeout=timeout)
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"benchmark case failed:\n{out.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["peak_rss_mib"] = round(max(after, before) / 1024, 1)
    result["peak_rss_note"] = "max over this and earlier cases" if after <= before else "this case"
    result["wall_s"] = round(wall, 2)
    return result


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def save(name: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return path
