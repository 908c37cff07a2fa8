from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from skimage.filters import threshold_multiotsu

import bigseg
from bigseg import models
from bigseg.train import confusion, iou_from_confusion


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_default_model_loads_offline_with_metadata():
    m = models.load("default")
    assert m.phases == ["pore", "cbd", "active"] and m.ndim in (2, 3)
    assert m.normalization["method"] == "percentile"
    prov = m.provenance
    assert prov["data"]["kind"] == "synthetic" and prov["duration_s"] > 0 and prov["hardware"]
    # two stages (scripts/train_default.sh): from scratch on fine microstructures, then
    # fine-tuned on fine and coarse ones; the checkpoint carries both
    assert prov["seed"] == 2028 and prov["data"]["radius_range"] == [5.0, 20.0]
    assert prov["init"] is not None and prov["parent"]["seed"] == 2026 and prov["parent"]["parent"] is None
    assert prov["parent"]["data"]["radius_range"] == [5.0, 12.0]
    # bundled files are small and the report matches the weights
    ref = resources.files("bigseg.models").joinpath("weights/default.pt")
    assert ref.is_file()
    with resources.as_file(ref) as p:
        assert p.stat().st_size < 8 * 2**20
    rep = json.loads(resources.files("bigseg.models").joinpath("weights/default_report.json").read_text())
    assert rep["checkpoint_key"] == m.checkpoint_key()
    assert [st["seed"] for st in rep["stages"]] == [2026, 2028]
    assert rep["steps"] == prov["steps"] + prov["parent"]["steps"]
    assert m.checkpoint is not None  # shipped to inference workers as a path


@pytest.mark.slow
@pytest.mark.parametrize("preset,seed", [("nano-ct-phase", 777), ("lab-micro-ct", 778)])
def test_default_model_beats_multi_otsu_on_64_cube(preset, seed):
    lab = bigseg.synth.electrode((64, 64, 64), seed=seed, chunks=(17, 23, 30)).values
    raw = bigseg.synth.xct(lab, seed=seed, preset=preset, chunks=(17, 23, 30))
    m = models.load("default")
    # normalised as the model was trained; its patch is capped at the 64³ volume (no zero padding)
    pred = bigseg.infer.segment(raw, m)["labels"].values
    ours = iou_from_confusion(confusion(lab, pred, 3))
    img = raw.values
    otsu = np.digitize(img, threshold_multiotsu(img, classes=3), right=True).astype(np.uint8)
    theirs = iou_from_confusion(confusion(lab, otsu, 3))
    assert ours.mean() > theirs.mean() + 0.05, (ours, theirs)
    assert ours[1] > theirs[1]  # CBD, the hard phase
    assert ours[0] > 0.5 and ours[1] > 0.2 and ours[2] > 0.8
