"""A module's ``model_key`` is a hash of its content (QA: scheduler auditor): it hashed the
cloudpickle bytes, which hold each tensor's storage under its memory address, so two instances
with the same weights (e.g. the same network built again in this process) got other keys and the
results named other weights. (A class defined in ``__main__`` or a notebook is pickled with an id
of its process: its key still differs between processes.)"""

import copy

import numpy as np
import torch

import bigseg
from tests.infer._infer_nets import conv3d_net


def _key(net: torch.nn.Module) -> str:
    img = np.random.default_rng(0).random((6, 6, 6)).astype(np.float32)
    return bigseg.predict(img, net, patch=(6, 6, 6)).attrs["model_key"]


def test_model_key_is_the_same_for_equal_modules_and_differs_for_other_weights():
    a, b = conv3d_net(seed=0), conv3d_net(seed=0)
    assert _key(a) == _key(b) == _key(copy.deepcopy(a))
    assert _key(conv3d_net(seed=1)) != _key(a)  # other weights
    c = conv3d_net(seed=0)
    with torch.no_grad():
        c[0].bias[0] += 1e-3  # one value changed in place
    assert _key(c) != _key(a)
    d = conv3d_net(seed=0)
    d[1] = torch.nn.Sigmoid()  # same weights, another layer
    assert _key(d) != _key(a)


def test_a_checkpoint_written_over_while_its_model_runs_is_refused_not_run(tmp_path):
    """The file changes between the client's look at it and a worker's load (a retraining saved
    over it while a long segmentation runs): the worker refuses it by its key rather than run
    other weights under the key of the model the run names."""
    import pytest

    from bigseg import models
    from bigseg.errors import ModelError
    from bigseg.infer._model import cached_module, reset_worker_stats, resolve_model

    kw = dict(channels=(4, 8), patch=(8, 8, 8))
    torch.manual_seed(0)
    first, retrained = models.create("unet3d", **kw), models.create("unet3d", **kw)
    path = models.save(first, tmp_path / "m.pt")
    _, spec = resolve_model(models.load(path), shape=(8, 8, 8))
    assert spec.checkpoint is not None and spec.blob is None
    models.save(retrained, path, overwrite=True)
    reset_worker_stats()
    with pytest.raises(ModelError, match="written over while the model ran"):
        cached_module(spec.key, spec.blob, spec.checkpoint, torch.device("cpu"))
    reset_worker_stats()
