"""Which scheduler a local run uses, and that finding out costs nothing."""

from __future__ import annotations

import subprocess
import sys

import dask
import dask.array as da
import dask.bag as db
import dask.local
import dask.threaded
import pytest

import bigseg
from bigseg.runtime._progress import scheduler_for

LOCAL_RUN = """
import sys
import numpy as np
import torch
import bigseg
from bigseg.runtime._progress import compute

vol = bigseg.open_volume({path!r})
net = torch.nn.Conv3d(1, 3, 3, padding=1)
ds = bigseg.predict(vol, net, patch=(16, 16, 16))
labels, = compute(ds["labels"].data, progress=False)
assert labels.shape == vol.shape, labels.shape
print("distributed" in sys.modules)
"""


@pytest.mark.slow
def test_local_predict_and_compute_do_not_import_distributed(tmp_path, odd_volume):
    """A laptop run never needs ``distributed``; dask's own ``get_scheduler`` would import it
    (0.2 s, ~15 MiB of RSS) just to learn that no client exists."""
    path = tmp_path / "v.ome.zarr"
    bigseg.save_volume(odd_volume, path, progress=False)
    out = subprocess.run([sys.executable, "-c", LOCAL_RUN.format(path=str(path))], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_scheduler_for_follows_dask():
    x = da.ones((4, 4), chunks=2)
    assert scheduler_for((x,)) is dask.threaded.get
    assert scheduler_for(()) is dask.threaded.get
    assert scheduler_for((x,), "sync") is dask.local.get_sync
    with dask.config.set(scheduler="synchronous"):
        assert scheduler_for((x,)) is dask.local.get_sync
    bag = db.from_sequence([1, 2])
    assert scheduler_for((bag,)) is bag.__dask_scheduler__
