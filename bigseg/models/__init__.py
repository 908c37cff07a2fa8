"""Segmentation networks, their registry and a safe checkpoint format.

``create("lrcsnet" | "unet3d", **kwargs)`` builds a :class:`Model` (a ``torch.nn.Module`` with
``phases``, ``patch``, ``ndim``, ``normalization`` and ``provenance``); ``save``/``load`` write
and read checkpoints without executing code from the file; ``load("default")`` is the model
bundled with bigseg (trained on synthetic electrodes by ``scripts/train_default.sh``).
"""

from ._model import DEFAULT_NORMALIZATION, Model, available, create, load, register, save
from ._nets import LRCSNet, UNet3D

__all__ = ["Model", "create", "load", "save", "available", "register", "LRCSNet", "UNet3D", "DEFAULT_NORMALIZATION"]
