"""One task per block in one graph layer (``bigseg.ops._blocks``): the blocks' results in order,
each block's own arguments, only the blocks asked for computed, and a graph whose size does not
grow by a collection per block (a ``dask.delayed`` per block: time quadratic in their number)."""

from __future__ import annotations

import threading

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from dask.utils import key_split

from bigseg.measure._blockwise import block_results, map_with_halo
from bigseg.ops._blocks import block_tasks, per_block


def _block_sum(a, b, scale, *, offset=0):
    return float(a.sum() * scale + b.sum() + offset)


def test_per_block_gives_each_block_its_arguments_in_c_order():
    x = np.arange(7 * 9 * 5, dtype=np.float64).reshape(7, 9, 5)
    a, b = da.from_array(x, chunks=(3, 4, 5)), da.from_array(-2 * x, chunks=(3, 4, 5))
    got = dask.compute(per_block(_block_sum, a, b, args=lambda idx: (idx[0] + 1,),
                                 kwargs=lambda idx: {"offset": 100 * idx[1]}), scheduler="sync")[0]
    want = []
    for idx in np.ndindex(*a.numblocks):
        sl = tuple(slice(sum(c[:i]), sum(c[:i + 1])) for c, i in zip(a.chunks, idx))
        want.append(float(x[sl].sum() * (idx[0] + 1) - 2 * x[sl].sum() + 100 * idx[1]))
    assert got == want and len(got) == 3 * 3


def test_per_block_computes_only_the_blocks_asked_for():
    seen = []
    lock = threading.Lock()

    def spy(b, block_info=None):
        with lock:
            seen.append(tuple(block_info[0]["chunk-location"]))
        return b

    arr = da.ones((8, 8, 8), chunks=4).map_blocks(spy, dtype=float)
    got = dask.compute(per_block(lambda b: float(b.sum()), arr, blocks=[(1, 0, 1), (0, 0, 0)]), scheduler="sync")[0]
    assert got == [64.0, 64.0] and sorted(seen) == [(0, 0, 0), (1, 0, 1)]


def test_one_layer_however_many_blocks():
    for n in (2, 8):
        arr = da.zeros((n * 2,) * 3, chunks=2)
        res = per_block(lambda b: b.size, arr)
        graph = res.__dask_graph__()
        assert len(graph.layers) == 2  # the arrays' (optimized) graph and the blocks' tasks
        assert len(graph.layers[res.key]) == n ** 3 + 1  # a task per block and the list of their results


def test_block_tasks_name_their_tasks_by_what_they_run():
    arr = da.zeros((4, 4, 4), chunks=2)

    def _count_voxels(b):
        return b.size

    name, graph = block_tasks(_count_voxels, arr)
    assert {key_split(k) for k in graph.layers[name]} == {"count-voxels"}
    assert dask.get(graph, (name, 1, 1, 1)) == 8


def test_measure_blocks_as_one_collection():
    x = np.random.default_rng(0).integers(0, 3, (10, 11, 12)).astype(np.uint8)
    arr = da.from_array(x, chunks=(4, 5, 6))
    res = block_results(lambda b, geom: (geom.origin, int(b.sum())), arr, depth=1)
    assert isinstance(res, Delayed)
    got = res.compute(scheduler="sync")
    # with a halo of 1 where the volume continues
    want = []
    for idx in np.ndindex(*arr.numblocks):
        lo = [sum(c[:i]) for c, i in zip(arr.chunks, idx)]
        hi = [sum(c[:i + 1]) for c, i in zip(arr.chunks, idx)]
        sl = tuple(slice(max(a - 1, 0), min(b + 1, n)) for a, b, n in zip(lo, hi, x.shape))
        want.append((tuple(lo), int(x[sl].sum())))
    assert got == want
    out = map_with_halo(lambda b, geom, *, k: np.full(geom.shape, k + geom.origin[0], np.int32), arr, depth=1,
                        dtype=np.int32, block_kwargs=lambda geom: {"k": geom.origin[2]})
    zz, _, xx = np.meshgrid(np.arange(10), np.arange(11), np.arange(12), indexing="ij")
    np.testing.assert_array_equal(out.compute(scheduler="sync"), (zz // 4) * 4 + (xx // 6) * 6)
    assert len(out.__dask_graph__().layers[out.name]) == int(np.prod(arr.numblocks))


def test_what_the_arrays_share_runs_once_per_block():
    """Was: each array's graph optimized on its own, so an upstream both arrays come from (ids
    made from the labels they are read with) was fused into both and ran twice per block."""
    calls = []
    lock = threading.Lock()

    def spy(b, block_info=None):
        with lock:
            calls.append(tuple(block_info[0]["chunk-location"]))
        return b + 1

    base = da.ones((8, 8, 8), chunks=4).map_blocks(spy, dtype=float)
    got = dask.compute(per_block(lambda x, y: float(x.sum() + y.sum()), base * 2, base - 1), scheduler="sync")[0]
    assert got == [64 * 4 + 64 * 1] * 8
    assert sorted(calls) == sorted(np.ndindex(2, 2, 2))


def test_layers_that_differ_only_in_their_arguments_are_distinct_tasks():
    """The layer's name is a token of what its tasks are made of, arguments and keywords too:
    two layers over the same arrays computed together each give their own results."""
    a = da.ones((4, 4, 4), chunks=2)  # blocks of 8 ones: _block_sum = 8 * scale + 8 + offset
    got = dask.compute(per_block(_block_sum, a, a, args=lambda idx: (1,)),
                       per_block(_block_sum, a, a, args=lambda idx: (2,)),
                       per_block(_block_sum, a, a, args=lambda idx: (1,), kwargs=lambda idx: {"offset": 5}),
                       per_block(_block_sum, a, a, args=lambda idx: (1,), kwargs=lambda idx: {"offset": 7}),
                       scheduler="sync")
    assert [set(g) for g in got] == [{16.0}, {24.0}, {21.0}, {23.0}]


def test_the_graph_holds_only_what_the_blocks_asked_for_need():
    """Culled as ``to_delayed`` culls: one block's layer does not carry the other blocks' tasks."""
    arr = da.ones((8, 8, 8), chunks=4) + 1
    res = per_block(lambda b: float(b.sum()), arr, blocks=[(1, 0, 1)])
    assert len(dict(res.__dask_graph__())) <= len(dict(arr.to_delayed()[1, 0, 1].__dask_graph__())) + 2
    assert res.compute(scheduler="sync") == [128.0]
