"""The shape of ``predict``'s task graph: linear in the blocks, model and weights held once."""

from __future__ import annotations

import pickle

import dask.array as da
import numpy as np

from bigseg.infer import predict

from ._infer_nets import conv3d_net


def test_a_billion_voxel_graph_is_one_task_set_per_block_with_model_and_weights_held_once():
    # 1024³ in 128³ chunks: 512 blocks (building it once took minutes: every dask.delayed call
    # re-culled the graph behind the sweep's gates)
    vol = da.zeros((1024,) * 3, chunks=128, dtype=np.float32)
    ds = predict(vol, conv3d_net(), patch=(64, 64, 64), overlap=0.5, memory_limit="8GiB")
    graph = dict(ds.labels.data.__dask_graph__())
    kinds: dict[str, int] = {}
    for k in graph:
        name = k if isinstance(k, str) else k[0]
        if name.startswith("bigseg-"):
            kinds[name.split("-")[1]] = kinds.get(name.split("-")[1], 0) + 1
    assert kinds["acc"] == 512 and kinds["labels"] == 512
    assert kinds["weight"] == 1 and kinds["model"] == 1
    # no task carries the importance map (1 MiB) or the network: they are keys of the graph
    acc_task = next(v for k, v in graph.items() if isinstance(k, str) and k.startswith("bigseg-acc-"))
    assert len(pickle.dumps(acc_task)) < 20_000
    assert ds.attrs["n_patches"] == 31**3
