"""One task per block in one graph layer: results of any kind from the blocks of dask arrays.

A ``dask.delayed`` per block is a collection per block: computing (or stacking) n of them
merges n graphs, time that grows faster than n (4096 blocks of a 64³ volume: 4.7 s for what one
layer does in 0.8 s; 13824 blocks: 35 s against 2.6 s). The helpers here build that layer
directly: the arrays' graphs optimized and culled to the blocks wanted (as ``to_delayed`` does),
then one task per block reading the arrays' keys.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.utils import funcname

__all__ = ["BlockResults", "block_tasks", "per_block", "task_name"]


def task_name(func: Callable[..., Any]) -> str:
    """What the dashboard calls the tasks running ``func`` (``_faces_block`` -> ``faces-block``;
    a ``functools.partial`` by the function it wraps)."""
    return funcname(func).strip("_").replace("_", "-") or "block"


def _layer(func: Callable[..., Any], arrays: tuple[da.Array, ...], blocks: Iterable[tuple[int, ...]] | None,
           args: Callable[[tuple[int, ...]], tuple] | None, kwargs: Callable[[tuple[int, ...]], dict] | None,
           name: str | None) -> tuple[str, dict, dict]:
    idxs = [tuple(int(i) for i in idx) for idx in (np.ndindex(*arrays[0].numblocks) if blocks is None else blocks)]
    extra = [tuple(args(idx)) if args is not None else () for idx in idxs]
    kws = [kwargs(idx) if kwargs is not None else {} for idx in idxs]
    if name is None:
        name = f"{task_name(func)}-" + tokenize(
            func, [a.name for a in arrays], idxs, extra, [sorted(kw.items()) for kw in kws])
    # the arrays' graphs together, fused and culled to the blocks wanted (as to_delayed would):
    # optimized one by one, what two arrays share (e.g. labels and ids made from them) was fused
    # into each and ran twice
    merged = HighLevelGraph.merge(*(a.__dask_graph__() for a in arrays))
    source = dict(arrays[0].__dask_optimize__(merged, [(a.name, *idx) for a in arrays for idx in idxs]))
    dsk: dict[Any, Any] = {(name, *idx): (functools.partial(func, **kw) if kw else func,
                                          *((a.name, *idx) for a in arrays), *e)
                           for idx, e, kw in zip(idxs, extra, kws)}
    return name, source, dsk


def _graph(name: str, source: dict, dsk: dict) -> HighLevelGraph:
    return HighLevelGraph({f"{name}-source": source, name: dsk}, {f"{name}-source": set(), name: {f"{name}-source"}})


def block_tasks(func: Callable[..., Any], *arrays: da.Array, blocks: Iterable[tuple[int, ...]] | None = None,
                args: Callable[[tuple[int, ...]], tuple] | None = None,
                kwargs: Callable[[tuple[int, ...]], dict] | None = None,
                name: str | None = None) -> tuple[str, HighLevelGraph]:
    """``(name, graph)``: the task ``(name, *idx)`` is ``func(*blocks, *args(idx), **kwargs(idx))``
    with ``blocks`` the blocks at ``idx`` of ``arrays`` (chunked alike), for each block index of
    ``blocks`` (default: every block, C order). ``name`` (default: the function's name and a
    token of what the tasks are made of) names the tasks, e.g. on the dashboard."""
    name, source, dsk = _layer(func, arrays, blocks, args, kwargs, name)
    return name, _graph(name, source, dsk)


class BlockResults(Delayed):
    """:func:`per_block`'s delayed list, which also knows its blocks' keys (:attr:`blocks`) and
    the graph of their tasks alone (:attr:`blocks_graph`): on a distributed client,
    :func:`bigseg.runtime.compute` gathers those keys from the workers that hold them, where the
    list's own task would first bring every block's result to one worker (particle tables: ~0.3
    GB at a million particles)."""

    __slots__ = ("blocks", "blocks_graph")

    def __init__(self, key: str, dsk: HighLevelGraph, blocks: list, blocks_graph: HighLevelGraph) -> None:
        super().__init__(key, dsk, layer=key)
        self.blocks, self.blocks_graph = blocks, blocks_graph


def per_block(func: Callable[..., Any], *arrays: da.Array, blocks: Iterable[tuple[int, ...]] | None = None,
              args: Callable[[tuple[int, ...]], tuple] | None = None,
              kwargs: Callable[[tuple[int, ...]], dict] | None = None, name: str | None = None) -> BlockResults:
    """One delayed list of the results of :func:`block_tasks`' tasks, in the order of ``blocks``
    (default: every block, C order); block ``idx``'s result is the graph's key ``(key, *idx)``."""
    name, source, dsk = _layer(func, arrays, blocks, args, kwargs, name)
    keys = list(dsk)
    return BlockResults(name, _graph(name, source, {**dsk, name: (list, keys)}), keys, _graph(name, source, dsk))
