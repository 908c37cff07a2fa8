"""The dashboard's task stream names each stage's tasks by what they do (``median``,
``watershed``, ``synth-xct``), not by the helper that runs them (``run``, ``block``,
``wrapper``)."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from dask.utils import key_split

from bigseg import baselines, filters, synth


def _names(arr) -> set[str]:
    return {key_split(k) for k in dict(getattr(arr, "data", arr).__dask_graph__())}


@pytest.fixture(scope="module")
def scan():
    lab = synth.electrode((20, 24, 24), seed=2, chunks=(7, 12, 12))
    return lab, synth.xct(lab, seed=2)


@pytest.mark.parametrize("make, name", [
    (lambda img: filters.median(img), "median"),
    (lambda img: filters.gaussian(img), "gaussian"),
    (lambda img: filters.unsharp(img), "unsharp"),
    (lambda img: filters.normalize(img), "normalize"),
    (lambda img: baselines.threshold(img), "threshold"),
    (lambda img: baselines.kmeans(img), "kmeans"),
    (lambda img: baselines.watershed(img), "watershed"),
])
def test_stage_tasks_are_named_by_the_stage(scan, make, name):
    _, img = scan
    new = _names(make(img)) - _names(img)
    assert name in new
    assert not new & {"run", "block", "wrapper", "_predict_block", "_watershed_block", "grey_classes", "rescale"}


def test_synthetic_scan_tasks(scan):
    lab, img = scan
    assert {"synth-electrode", "synth-model"} <= _names(lab) and "ParticleModel" not in _names(lab)
    assert "synth-xct" in _names(img) and "block" not in _names(img)
    # a label volume not from the particle model (rendered from its blocks)
    plain = synth.xct(da.from_array(np.asarray(lab), chunks=12), seed=2)
    assert "synth-xct" in _names(plain) and "block" not in _names(plain)
    assert "synth-perturb" in _names(synth.perturb(lab.persist()))
