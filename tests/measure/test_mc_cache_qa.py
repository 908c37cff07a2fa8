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


def test_a_full_table_is_not_copied_for_each_block(monkeypatch):
    """Where the shared table is full (``_MAX_TABLE`` keys), a block with keys it lacks summed
    over a copy of the whole table plus its own keys: up to 128 MiB and 0.1 s for each field of
    every block. Its own keys go in a small table of their own; the areas stay bit for bit."""
    import tracemalloc

    ext = _labels()[:8]
    spacing = (1.0, 0.5, 1.5)
    monkeypatch.setattr(metrics, "_TABLES", {})
    want = mc_field_areas(ext, FIELDS, spacing)  # cold, with room: every key cached
    monkeypatch.setattr(metrics, "_TABLES", {})
    table = metrics._table(spacing)
    filler = (np.arange(1 << 16, dtype=np.int64) << 5) | 31  # corner counts of 31 (> 27): never a real cell
    table.add(filler, np.zeros(len(filler)))
    monkeypatch.setattr(metrics, "_MAX_TABLE", table.n)  # full
    mc_field_areas(ext[:4], FIELDS, spacing)  # compiled, warmed
    tracemalloc.start()
    try:
        got = mc_field_areas(ext, FIELDS, spacing)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert table.n == len(filler)  # nothing added to the full table
    assert got.tolist() == want.tolist()
    table_bytes = sum(a.nbytes for a in table.snapshot[:2])  # 2 MiB
    assert peak < table_bytes / 4, (peak, table_bytes)
