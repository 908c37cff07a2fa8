"""benchmarks/_util.save: the committed results (the figures README quotes) are replaced only by a
reference run (no arguments, `make bench`), `--merge` or BENCH_RECORD=1."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest


@pytest.fixture
def util(tmp_path, monkeypatch):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_util.py"
    spec = importlib.util.spec_from_file_location("bench_util_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RESULTS", tmp_path)
    monkeypatch.delenv("BENCH_RECORD", raising=False)
    return mod


def test_a_quick_run_leaves_the_committed_results_alone(util, tmp_path, monkeypatch, capsys):
    """Was: `python benchmarks/bench_ingest.py --sizes 32,48` wrote over results/ingest.json (the
    1024³ run README quotes) and printed 'target ... PASS' for a 48³ ingest."""
    (tmp_path / "ingest.json").write_text('{"reference": true}')
    monkeypatch.setattr(sys, "argv", ["bench_ingest.py", "--sizes", "32,48"])
    assert util.save("ingest", {"rows": []}) == tmp_path / "ingest.local.json"
    assert json.loads((tmp_path / "ingest.json").read_text()) == {"reference": True}
    assert json.loads((tmp_path / "ingest.local.json").read_text())["argv"] == ["--sizes", "32,48"]
    assert "left as it was" in capsys.readouterr().err
    monkeypatch.setenv("BENCH_RECORD", "1")
    assert util.save("ingest", {"rows": []}) == tmp_path / "ingest.json"
    monkeypatch.delenv("BENCH_RECORD")
    for argv in (["bench_ingest.py"], ["bench_predict.py", "--sizes", "256", "--merge"]):
        monkeypatch.setattr(sys, "argv", argv)
        assert util.save("x", {}) == tmp_path / "x.json"
