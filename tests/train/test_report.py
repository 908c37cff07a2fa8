from __future__ import annotations

import os

import matplotlib.image as mpimg

from bigseg.train._report import _joined_history, lineage, plot_history


def _stage(seed, n, parent=None):
    hist = [{"epoch": e + 1, "lr": 1e-3, "loss": 1.0 / (e + 1), "val_iou": {"pore": 0.5, "cbd": 0.2, "active": 0.9}}
            for e in range(n)]
    return {"seed": seed, "epochs": n, "steps": 10 * n, "duration_s": 60.0 * n, "history": hist, "parent": parent}


def test_lineage_walks_parents_oldest_first_and_numbers_epochs_on(tmp_path):
    first = _stage(1, 3)
    second = _stage(2, 2, parent=first)
    third = _stage(3, 4, parent=second)
    stages = lineage(third)
    assert [s["seed"] for s in stages] == [1, 2, 3]
    assert lineage(first) == [first]
    hist, starts = _joined_history(stages)
    assert [h["epoch"] for h in hist] == list(range(1, 10))
    assert [h["stage"] for h in hist] == [1, 1, 1, 2, 2, 3, 3, 3, 3]
    assert starts == [3.5, 5.5]
    png = tmp_path / "r.png"
    plot_history(hist, ["pore", "cbd", "active"], str(png), stage_starts=starts, test={"a": {"pore": 0.5, "cbd": 0.2, "active": 0.9}})
    assert mpimg.imread(png).shape[2] in (3, 4)


def test_training_without_validation_says_so_over_its_epochs(tmp_path, monkeypatch):
    """Was: an empty IoU panel with a legend of absent curves and an x axis of -0.045 ... 0.045."""
    import matplotlib.pyplot as plt

    import bigseg.report._figure as figure

    drawn = []
    monkeypatch.setattr(figure, "finish", lambda fig, path, **kw: drawn.append(fig))
    hist = [{"epoch": e, "lr": 1e-3, "loss": 1.0 / e, "val_iou": None} for e in range(1, 6)]
    plot_history(hist, ["pore", "cbd", "active"], str(tmp_path / "r.png"))
    ious = drawn[0].axes[1]
    try:
        assert ious.get_legend() is None
        assert [t.get_text().split("\n")[0] for t in ious.texts] == ["no validation data"]
        lo, hi = ious.get_xlim()
        assert lo <= 1 and hi >= 5
    finally:
        plt.close(drawn[0])


def test_figures_written_to_files_keep_the_backend_a_notebook_chose(tmp_path):
    """Was: ``matplotlib.use("Agg")`` on every call (``force=False`` switches too), so a notebook's
    inline figures stopped showing once bigseg had written a figure to a file (a new process:
    the backend is process-wide). With none chosen, Agg (workers without a display)."""
    import subprocess
    import sys

    draw = ("import numpy as np\n"
            "from bigseg.report import orthoslices\n"
            "from bigseg.train._report import plot_history\n"
            "h = [{'epoch': 1, 'lr': 1e-3, 'loss': 1.0, 'val_iou': {'pore': 0.5}}]\n"
            f"plot_history(h, ['pore'], {str(tmp_path / 'r.png')!r})\n"
            "print(matplotlib.get_backend())\n"
            f"orthoslices(np.zeros((4, 5, 6), np.float32), path={str(tmp_path / 's.png')!r})\n"
            "print(matplotlib.get_backend())\n")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    for chosen, expected in (("matplotlib.use('svg')", "svg"), ("", "agg")):
        out = subprocess.run([sys.executable, "-c", f"import matplotlib; {chosen}\n" + draw],
                             capture_output=True, text=True, check=True, env=env)
        assert [b.lower() for b in out.stdout.split()] == [expected, expected]
    assert mpimg.imread(tmp_path / "r.png").shape[2] in (3, 4)
    assert mpimg.imread(tmp_path / "s.png").shape[2] in (3, 4)
