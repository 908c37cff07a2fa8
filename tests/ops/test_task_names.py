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


def test_stored_stages_are_named_on_the_task_stream(scan, tmp_path, monkeypatch):
    """Was: a resumable write (filter, segment, run) stored each block in one task, dask's fusion
    put the stages in it, and the task stream showed them all as `store_block`."""
    import zarr

    from bigseg.runtime import _manifest

    _, img = scan
    arr = filters.gaussian(filters.median(img)).data
    # every stage computed in the stored tasks, the synthetic scan's own too
    assert _manifest.stage_label(arr) == "synth_model+synth_xct+median+gaussian"
    seen: list = []
    real = _manifest.compute

    def spy(*tasks, **kwargs):  # the tasks of the layer each collection computed is made of
        seen.extend(key_split(k) for t in tasks for k in t.__dask_graph__().layers[t.key] if isinstance(k, tuple))
        return real(*tasks, **kwargs)

    monkeypatch.setattr(_manifest, "compute", spy)
    target = zarr.create_array(str(tmp_path / "a.zarr"), shape=arr.shape, chunks=[c[0] for c in arr.chunks],
                               dtype=arr.dtype)
    _manifest.store_resumable(arr, target, tmp_path / "manifest", progress=False)
    assert set(seen) == {"synth_model+synth_xct+median+gaussian-store"} and len(seen) == int(np.prod(arr.numblocks))
    np.testing.assert_array_equal(target[...], arr.compute())
    assert _manifest.stage_label(baselines.watershed(img).data).endswith("+watershed")
    assert _manifest.stage_label(da.zeros(4, chunks=2)) == ""  # plumbing alone: the default name


@pytest.mark.parametrize("split, name", [(True, "split-block"), (False, "cc-block")])
def test_particle_label_tasks_are_named_by_their_kernel(scan, split, name):
    """map_with_halo's blocks of a ``functools.partial`` kernel (the particles' split and
    components) were all called ``block``."""
    from bigseg import measure

    lab, _ = scan
    ids = measure.particle_labels(lab, split=split, max_diameter=6)
    new = _names(ids) - _names(lab)
    assert name in new
    assert not new & {"run", "block", "wrapper"}


def test_a_plain_save_names_its_stages_on_the_task_stream(scan, tmp_path, monkeypatch):
    """Was: only resumable writes named their tasks by stage; `save_volume` (the API's writes,
    `bigseg bench`) stored through dask's `store`, so a median showed on the dashboard as
    `overlap-store-map`, every level of the pyramid too."""
    import bigseg
    from bigseg.io import _omezarr
    from bigseg.kernels import filters as kernels

    _, img = scan
    seen: list = []
    real, median, medians = _omezarr.compute, kernels.median, []

    def spy(*tasks, **kwargs):
        seen.extend(key_split(k) for t in tasks for k in t.__dask_graph__().layers[t.name] if isinstance(k, tuple))
        return real(*tasks, **kwargs)

    monkeypatch.setattr(_omezarr, "compute", spy)
    monkeypatch.setattr(kernels, "median", lambda *a, **k: medians.append(1) or median(*a, **k))
    vol = filters.median(img)
    bigseg.save_volume(vol, tmp_path / "m.ome.zarr", levels=2, progress=False)
    assert len(medians) == int(np.prod(vol.data.numblocks))  # once a block: the levels share one graph
    # each level's tasks by the stages that make it (the pyramid's level 1 by its downsampling too)
    assert set(seen) == {"synth_model+synth_xct+median-store", "synth_model+synth_xct+median+coarsen-store"}
    assert len(seen) == sum(int(np.prod(v.data.numblocks)) for v in
                            (bigseg.open_volume(tmp_path / "m.ome.zarr", level=k) for k in (0, 1)))
    np.testing.assert_array_equal(bigseg.open_volume(tmp_path / "m.ome.zarr").values, vol.values)
