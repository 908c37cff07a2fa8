"""benchmarks/_util.save: the committed results (the figures README quotes) are replaced only by a
reference run (no arguments, `make bench`), `--merge` or BENCH_RECORD=1."""

from __future__ import annotations

import importlib.util
import json
import subprocess
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


def test_a_benchmark_sized_by_its_environment_leaves_the_committed_results_alone(util, tmp_path, monkeypatch):
    """Was: `SHAPE=16,48,48 python benchmarks/bench_fov.py` (a quick check of a benchmark configured
    by environment variables) wrote over results/fov.json; bench_model_quality also over the README's
    docs/images/model_quality.png."""
    env = {"SHAPE": "48,128,128", "STEPS": "5"}
    monkeypatch.setattr(sys, "argv", ["bench_fov.py"])
    monkeypatch.delenv("SHAPE", raising=False)
    monkeypatch.delenv("STEPS", raising=False)
    assert util.recording(env)
    monkeypatch.setenv("SHAPE", "48,128,128")  # the default, spelt out: still the reference run
    assert util.save("fov", {}, env=env) == tmp_path / "fov.json"
    monkeypatch.setenv("SHAPE", "16,48,48")
    assert not util.recording(env)
    assert util.save("fov", {}, env=env) == tmp_path / "fov.local.json"
    monkeypatch.setenv("BENCH_RECORD", "1")
    assert util.save("fov", {}, env=env) == tmp_path / "fov.json"


@pytest.mark.parametrize("name", ["bench_fov", "bench_temporal", "bench_model_quality", "bench_model_capacity"])
def test_a_benchmark_without_options_answers_help_and_refuses_others(name):
    """Was: these take environment variables only and ignored their arguments: `--help` (or a quick
    `--sizes 32`) ran the whole benchmark, 1 to 30 minutes, and wrote its committed results."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and f"usage: {name}.py" in done.stdout and "Run:" in done.stdout
    done = subprocess.run([sys.executable, str(script), "--sizes", "32"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unrecognized arguments: --sizes 32" in done.stderr


def test_the_model_quality_figure_shows_every_method_it_names(monkeypatch, tmp_path):
    """Was: each preset's panel cut at the random forest's CBD IoU, so multi-Otsu's point (in the
    legend) lay below it, or under the legend; and the bars below gave each method another colour
    than its marker above (random forest orange above, green below)."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_model_quality.py"
    spec = importlib.util.spec_from_file_location("bench_model_quality_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    methods = ["default", "fine_tuned", "random_forest", "multi_otsu", "ceiling_dense_rf", "ceiling_specialist"]
    point = {"pore": 0.7, "cbd": 0.4, "active": 0.8}
    row = {"preset": "p", "default": point, **{k: point for k in methods[1:]},
           "multi_otsu": {"pore": 0.69, "cbd": 0.13, "active": 0.7},
           "default_tradeoff": [{"iou": {"pore": 0.68 + 0.01 * i, "cbd": 0.42 - 0.02 * i}} for i in range(5)]}
    mean_frac = {k: {"pore": 1.0, "cbd": -1.0, "active": 0.5} for k in methods}
    matplotlib.use("Agg")
    monkeypatch.setattr(plt, "close", lambda fig=None: None)  # the figure, left open to be read
    mod.draw([{**row, "preset": f"p{i}"} for i in range(4)], mean_frac, str(tmp_path / "q.png"))  # as many as run
    fig = plt.gcf()
    try:
        top, bottom = fig.axes[0], fig.axes[-1]
        lo, hi = top.get_ylim()
        markers = {}
        for line in top.get_lines():
            assert all(lo <= y <= hi for y in line.get_ydata()), line.get_label()
            markers[line.get_label()] = to_rgb(line.get_color())
        legend = top.get_legend()
        box = legend.get_window_extent()
        x, y = top.transData.transform((0.69, 0.13))
        assert not box.contains(x, y)  # multi-Otsu's point not under the legend
        named = {"default": "default as shipped", "fine_tuned": "default fine-tuned (sparse)",
                 "random_forest": "random forest (sparse)", "multi_otsu": "multi-Otsu",
                 "ceiling_dense_rf": "ceiling: RF, dense in-sample", "ceiling_specialist": "ceiling: specialist"}
        for method, bars in zip(methods, bottom.containers):
            assert to_rgb(bars.patches[0].get_facecolor()) == markers[named[method]], method
    finally:
        plt.close(fig)
