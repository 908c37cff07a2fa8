"""Going on with a training run that stopped (a job's wall time, ``max_minutes``, a crash).

After each epoch :func:`bigseg.train.fit` writes ``resume.pt`` into the ``checkpoint_dir``
beside ``epoch_NNN.pt``: the weights, the optimiser's moments, the learning-rate schedule, the
history and best weights so far, the early-stopping count, and the state of every random
generator (patch sampling, augmentation, torch's own, the synthetic-volume recipes). A run
started again with ``resume=True`` on the same folder and settings takes them up and goes on
from the next epoch, so the model is the one the run would have made without stopping.
Read with ``torch.load(weights_only=True)``: no code runs from the file.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..errors import InputError

__all__ = ["STATE_FILE", "load_state", "check_same_run", "save_state"]

STATE_FILE = "resume.pt"
_VERSION = 1


def load_state(checkpoint_dir: Any) -> dict[str, Any]:
    """The state the last epoch of the run in ``checkpoint_dir`` left (InputError when there is
    none, or it cannot be read)."""
    import torch

    if checkpoint_dir is None:
        raise InputError("Expected `checkpoint_dir` with `resume` (the folder of the run to go on with). Got None.")
    path = os.path.join(os.fspath(checkpoint_dir), STATE_FILE)
    if not os.path.isfile(path):
        raise InputError(f"Expected `checkpoint_dir` {os.fspath(checkpoint_dir)!r} to hold a run to resume ({STATE_FILE}, "
                         "written after each epoch of a run given that folder). Got none: a run stopped before its "
                         "first epoch ended has nothing to go on with; start it again without `resume`.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (cut short, another format, refused: said as one line)
        from ..models._model import load_refusal  # (torch's advice to load it unsafely left out)

        raise InputError(f"Expected `checkpoint_dir` {os.fspath(checkpoint_dir)!r} to hold a readable {STATE_FILE}. "
                         f"Got {load_refusal(exc)}") from None
    if not isinstance(state, dict) or state.get("version") != _VERSION:
        raise InputError(f"Expected {path!r} to be a bigseg training state (version {_VERSION}). Got something else.")
    return state


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def check_same_run(state: dict[str, Any], settings: dict[str, Any], *, epochs: int) -> None:
    """Refuse (InputError, naming the setting) to resume a run with other settings than it was
    started with (another seed, learning rate, patch, data ...: the model would be neither run's)
    or with no epoch left to train."""
    saved = state["settings"]
    for key in [*settings, *(k for k in saved if k not in settings)]:
        if _same(saved.get(key), settings.get(key)):
            continue
        if key == "data":  # digests of the arrays: not worth showing
            raise InputError("Expected the image and labels (and validation slices) of the run in `checkpoint_dir` "
                             "to resume it. Got other data.")
        raise InputError(f"Expected the settings of the run in `checkpoint_dir` to resume it. Got {key}="
                             f"{settings.get(key)!r} where it had {saved.get(key)!r} (start a new run in another folder "
                             "to train with other settings).")
    done = int(state["epoch"])
    if epochs <= done:
        raise InputError(f"Expected `epochs` above the {done} the run in `checkpoint_dir` has trained (the total to "
                         f"reach). Got epochs={epochs}.")


def save_state(checkpoint_dir: str, state: dict[str, Any]) -> None:
    """``resume.pt`` in ``checkpoint_dir``, written whole or not at all."""
    from ..models._model import save_torch

    save_torch({**state, "version": _VERSION}, os.path.join(checkpoint_dir, STATE_FILE))
