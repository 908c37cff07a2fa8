"""Training: sparse-label training, fine-tuning and training on synthetic electrodes.

``bigseg.train(image, labels, ...)`` fits an LRCS-Net-style 2D network or a 3D U-Net to a
volume whose labels are sparse (255 = unlabelled); ``init=`` fine-tunes an existing model
(transfer learning); ``bigseg.train.synthetic(...)`` (or ``train(synthetic=True)``) trains on
electrodes and X-ray CT physics generated on the fly by :mod:`bigseg.synth`.

This package is itself callable (``bigseg.train(...)`` is :func:`train` whether ``bigseg.train``
resolves to the function or to this subpackage).
"""

from __future__ import annotations

import inspect
import sys
import types

from ._augment import Augment
from ._loss import confusion, dice_ce_loss, iou_from_confusion
from ._synthetic import TRAIN_PRESETS, evaluate, make_pair, random_electrode, random_physics, synthetic
from ._train import train

__all__ = [
    "train",
    "synthetic",
    "Augment",
    "dice_ce_loss",
    "confusion",
    "iou_from_confusion",
    "evaluate",
    "make_pair",
    "random_electrode",
    "random_physics",
    "TRAIN_PRESETS",
]


class _CallablePackage(types.ModuleType):
    """Make ``bigseg.train(...)`` work after ``import bigseg.train`` binds the subpackage."""

    def __call__(self, *args, **kwargs):
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
__signature__ = inspect.signature(train)  # inspect.signature(bigseg.train) and notebooks' call tips show train's
# ... and so do IPython's `bigseg.train?` ("Call signature", from __call__: was (*args, **kwargs)) and
# help(bigseg.train) (the package's docstring, which named no parameter): train's own, kept in train
_CallablePackage.__call__.__signature__ = __signature__.replace(
    parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY), *__signature__.parameters.values()])
if __doc__ and train.__doc__:  # (python -OO strips both)
    __doc__ = f"{__doc__}\n``bigseg.train(image, labels, ...)``, :func:`train`:\n\n{inspect.getdoc(train)}\n"
