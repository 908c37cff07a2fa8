"""Marching-cubes areas do not depend on what the per-process cell-area cache already holds
(QA: scheduler auditor): a cold cache (first call in a process, a fresh worker of the processes
scheduler or a cluster) summed the missing cells after the others, so the same call gave other
last bits than on a warm cache."""

import numpy as np
import pytest

from bigseg.kernels import metrics
from bigseg.kernels.metrics import mc_field_areas

FIELDS = [(0,), (1,), (2,), (0, 1)]


def _labels() -> np.ndarray:
    rng = np.random.default_rng(3)
    lab = rng.integers(0, 3, (18, 18, 18)).astype(np.uint8)
    return np.pad(lab, 1, mode="edge")


@pytest.mark.parametrize("room", [True, False], ids=["cached", "table-full"])
def test_mc_areas_identical_on_cold_and_warm_cache(monkeypatch, room):
    ext = _labels()
    spacing = (1.0, 0.75, 1.25)  # a voxel size of its own: no other test has filled its table
    monkeypatch.setattr(metrics, "_TABLES", {})
    if not room:
        monkeypatch.setattr(metrics, "_MAX_TABLE", 0)  # nothing is cached: every call is cold
    cold = mc_field_areas(ext, FIELDS, spacing)
    warm = mc_field_areas(ext, FIELDS, spacing)
    assert cold.tolist() == warm.tolist()  # bit for bit, not only close
    monkeypatch.setattr(metrics, "_TABLES", {})
    monkeypatch.setattr(metrics, "_MAX_TABLE", 1 << 21)
    mc_field_areas(ext[:10], FIELDS, spacing)  # half the configurations cached first
    assert mc_field_areas(ext, FIELDS, spacing).tolist() == cold.tolist()
