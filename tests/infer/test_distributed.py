"""predict on a LocalCluster of 2 worker processes: same result, model deserialised once per worker."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from ._infer_nets import conv3d_net

import bigseg
from bigseg.infer import predict, reset_worker_stats, worker_stats
from bigseg.kernels.blend import count_patches

pytestmark = [pytest.mark.timeout(240), pytest.mark.filterwarnings("ignore")]


@pytest.mark.slow
def test_local_cluster_equals_threaded_scheduler_and_loads_model_once_per_worker():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 34, 40)).astype(np.float32)
    net = conv3d_net(seed=11)
    patch = (12, 12, 12)
    darr = da.from_array(x, chunks=(11, 17, 9))
    local = predict(darr, net, patch=patch, probabilities=True)
    p_local = local["probabilities"].values
    with bigseg.connect("local", n_workers=2, memory_limit="2GiB", quiet=True, dashboard=False) as client:
        client.run(reset_worker_stats)
        ds = predict(darr, net, patch=patch, probabilities=True)
        # the serialised model appears once in the graph, not in every task
        graph = dict(ds["probabilities"].data.__dask_graph__())
        model_keys = [k for k in graph if str(k).startswith("bigseg-model-")]
        assert len(model_keys) == 1
        p_dist, labels = bigseg.runtime.compute(ds["probabilities"].data, ds["labels"].data, progress=False)
        stats = client.run(worker_stats)
        # a second prediction with the same model reuses the workers' cached copy
        predict(darr, net, patch=patch)["labels"].data.sum().compute()
        stats2 = client.run(worker_stats)
        # a TorchScript module (which does not pickle) reaches the worker processes too
        import torch

        scripted = torch.jit.trace(net, torch.zeros(1, 1, *patch))
        p_script = predict(darr, scripted, patch=patch, probabilities=True)["probabilities"].values
    np.testing.assert_allclose(p_dist, p_local, atol=1e-6, rtol=0)
    np.testing.assert_allclose(p_script, p_local, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(labels, p_local.argmax(0))
    assert len(stats) == 2
    key = local.attrs["model_key"]
    loads = [s["loads"].get(key, 0) for s in stats.values()]
    patches = [s["patches"] for s in stats.values()]
    assert loads == [1 if n else 0 for n in patches] and sum(loads) >= 1  # once per worker that ran windows
    assert sum(patches) == count_patches(x.shape, patch, 0.5) == ds.attrs["n_patches"]
    assert all(s["loads"].get(key, 0) <= 1 for s in stats2.values())  # still once per worker
    assert sum(s["patches"] for s in stats2.values()) == 2 * ds.attrs["n_patches"]
    reset_worker_stats()
    assert worker_stats()["loads"] == {}
