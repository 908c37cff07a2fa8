"""`bigseg compare` of N segmentations against NumPy and scikit-learn: unlabelled voxels, a truth
that names its phases in another order (matched by name) or names other phases (refused)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from sklearn.metrics import jaccard_score

from bigseg.cli import main
from bigseg.io import save_labels, save_volume

PHASES = ["pore", "cbd", "active"]


def _image(tmp_path):
    rng = np.random.default_rng(0)
    shape = (9, 11, 13)
    truth = rng.integers(0, 3, shape).astype(np.uint8)
    image = tmp_path / "scan.ome.zarr"
    save_volume(truth.astype(np.float32), image, chunks=(7, 5, 11), progress=False)
    segs = {}
    for name in ("a", "b", "c"):
        segs[name] = np.where(rng.random(shape) < 0.7, truth, rng.integers(0, 3, shape)).astype(np.uint8)
        save_labels(segs[name], image, name=name, phases=PHASES, chunks=(4, 6, 5), progress=False)
    segs["c"][:, :2] = 255  # outside c's field of view
    save_labels(segs["c"], image, name="c", phases=PHASES, chunks=(4, 6, 5), overwrite=True, progress=False)
    # the reference names its phases in the other order: value 0 is active there
    save_labels(2 - truth, image, name="truth", phases=PHASES[::-1], progress=False)
    save_labels(truth, image, name="other", phases=["x", "y", "z"], progress=False)
    return image, truth, segs


def test_compare_equals_numpy_with_a_truth_named_in_another_order(tmp_path, capsys):
    image, truth, segs = _image(tmp_path)
    csv = tmp_path / "t.csv"
    assert main(["compare", "a", "b", "c", "--image", str(image), "--truth", str(image / "labels" / "truth"),
                 "--csv", str(csv), "--no-progress"]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(csv, index_col="segmentation")
    for name, s in segs.items():
        labelled = s != 255
        np.testing.assert_allclose(table.loc[name, [f"fraction_{p}" for p in PHASES]],
                                   np.bincount(s[labelled], minlength=3) / labelled.sum(), rtol=1e-12)
        # a voxel c leaves unlabelled is a miss: in no class
        iou = jaccard_score(truth.ravel(), s.ravel(), labels=[0, 1, 2], average=None)
        np.testing.assert_allclose(table.loc[name, [f"iou_{p}" for p in PHASES]], iou, rtol=1e-12)
    diffs = []
    for x, y in itertools.combinations(segs, 2):
        both = (segs[x] != 255) & (segs[y] != 255)
        diffs.append(100 * (segs[x] != segs[y])[both].mean())
    assert f"mean over the 3 pair(s): {np.mean(diffs):.2f} %" in out
    matrix = [line.split() for line in out.splitlines() if line[:1] in "abc" and len(line.split()) == 4]
    rows = {r[0]: r[1:] for r in matrix}
    np.testing.assert_allclose([float(rows["a"][1]), float(rows["a"][2]), float(rows["b"][2])], diffs, atol=0.005)


def test_compare_refuses_a_truth_that_names_other_phases_before_writing(tmp_path, capsys):
    image, _, _ = _image(tmp_path)
    csv = tmp_path / "t.csv"
    assert main(["compare", "a", "b", "--image", str(image), "--truth", str(image / "labels" / "other"),
                 "--csv", str(csv), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--truth" in err and "['x', 'y', 'z']" in err and str(PHASES) in err and "--phases" in err
    assert not csv.exists()
    # by label value when asked
    assert main(["compare", "a", "b", "--image", str(image), "--truth", str(image / "labels" / "other"),
                 "--phases", "pore,cbd,active", "--csv", str(csv), "--no-progress"]) == 0
    assert csv.exists()
