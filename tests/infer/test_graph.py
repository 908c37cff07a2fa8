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


def test_local_sweep_blends_each_block_right_after_its_windows(monkeypatch):
    """On the local scheduler blocks run one by one, each blended before the next block's
    windows start (fewest overhang pieces alive); with a cluster the sweep is by rows/planes."""
    import dask

    from bigseg.infer import _predict as P

    log: list[tuple[str, tuple[int, ...]]] = []
    acc, blend = P._acc_task, P._blend_task

    def acc_spy(*a, **k):
        log.append(("acc", tuple(k["origin"])))
        return acc(*a, **k)

    def blend_spy(*a, **k):
        log.append(("blend", tuple(k["lo"])))
        return blend(*a, **k)

    monkeypatch.setattr(P, "_acc_task", acc_spy)
    monkeypatch.setattr(P, "_blend_task", blend_spy)
    vol = np.random.default_rng(0).normal(size=(20, 24, 28)).astype(np.float32)
    ds = predict(vol, conv3d_net(), patch=(8, 8, 8), chunks=(7, 10, 9), device="cpu")
    with dask.config.set(scheduler="threads", num_workers=2):
        ds["labels"].compute()
    kinds = [k for k, _ in log]
    # window starts 0, 4, ... on (20, 24, 28): 2 x 2 x 3 of the 3 x 3 x 4 blocks own windows
    assert kinds.count("blend") == 3 * 3 * 4 and kinds.count("acc") == 2 * 2 * 3
    accs = [i for i, (kind, _) in enumerate(log) if kind == "acc"]
    for i, j in zip(accs, accs[1:] + [len(log)]):  # each block blended before the next one's windows
        assert ("blend", log[i][1]) in log[i + 1: j], log[i: j]

    monkeypatch.setattr(P, "_concurrent_slots", lambda: 2)
    monkeypatch.setattr("bigseg.runtime._progress.current_client", lambda: object())
    assert P._sweep(4) == "row" and P._sweep(1) == "plane"


def test_local_sweep_parks_pieces_for_later_rows_and_planes_on_disk(monkeypatch):
    """Pieces that wait for the next row or plane of blocks go to temporary files; the pieces
    for the block itself and its x-neighbour (next in the sweep) stay in memory. Same labels and
    probabilities either way."""
    from bigseg.infer import _predict as P

    made: list[tuple[int, ...]] = []
    real = P.SpilledArray

    class Spy(real):
        __slots__ = ()

        def __init__(self, arr, dir=None):
            made.append(arr.shape)
            super().__init__(arr, dir)

    monkeypatch.setattr(P, "SpilledArray", Spy)
    vol = np.random.default_rng(1).normal(size=(20, 24, 28)).astype(np.float32)
    kw = dict(patch=(8, 8, 8), chunks=(7, 10, 9), device="cpu", probabilities=True)
    parked = predict(vol, conv3d_net(), **kw).compute()
    # blocks owning windows: 2 x 2 x 3; each reaches the next z plane or y row: ≥ one piece each
    assert len(made) >= 2 * 2 * 3
    assert all(shape[0] == 2 for shape in made)  # C - 1 channels
    n = len(made)
    kept = predict(vol, conv3d_net(), spill=False, **kw).compute()
    assert len(made) == n  # spill=False: nothing parked
    np.testing.assert_array_equal(parked["probabilities"].values, kept["probabilities"].values)
    np.testing.assert_array_equal(parked["labels"].values, kept["labels"].values)


def test_a_resumed_write_runs_the_model_only_for_the_blocks_not_on_disk(tmp_path):
    # the sweep's gates chain every block to the ones before: a resume culled to the missing
    # blocks still ran every window of the volume (a 512³ segment killed at 58 % made no
    # progress in the 6 minutes of its rerun)
    import zarr

    from bigseg.infer import reset_worker_stats, worker_stats
    from bigseg.runtime._manifest import resumable_array, store_resumable

    x = da.from_array(np.random.default_rng(0).random((32, 32, 32), dtype=np.float32), chunks=8)

    def labels():
        return predict(x, conv3d_net(1), patch=(8, 8, 8), overlap=0.5, batch_size=4, device="cpu").labels.data

    target = resumable_array(zarr.open_group(str(tmp_path / "s.zarr"), mode="w"), "a", shape=x.shape,
                             chunks=(8, 8, 8), dtype=np.uint8, manifest=tmp_path / "m")
    reset_worker_stats()
    store_resumable(labels(), target, tmp_path / "m", progress=False)
    assert worker_stats()["patches"] == 7**3
    want = target[:]
    for marker in (tmp_path / "m").glob("3.*"):  # the last plane of blocks was not written
        marker.unlink()
    target[24:] = 0
    reset_worker_stats()
    assert store_resumable(labels(), target, tmp_path / "m", progress=False) == (16, 64)
    # the windows that start in the last two planes of blocks (z starts 16, 20 | 24): 3 of 7
    assert worker_stats()["patches"] == 3 * 7**2
    np.testing.assert_array_equal(target[:], want)
