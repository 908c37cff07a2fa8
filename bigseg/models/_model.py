"""The :class:`Model` wrapper, the architecture registry and the safe checkpoint format.

Checkpoint format (``.pt``, version 1): ``torch.save`` of a plain dict
``{"format": "bigseg-model", "version": 1, "meta": <JSON string>, "state": {name: tensor}}``,
read back with ``torch.load(..., weights_only=True)``: the restricted unpickler only rebuilds
tensors and plain containers, so a file whose pickle would import or call anything else (e.g.
``os.system``) is refused before any of it runs. The metadata is JSON (architecture and its
arguments, phases, patch, normalisation, provenance), never code.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
from importlib import resources
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .._parse import parse_choice, parse_flag, parse_phases, whole_numbers
from ..errors import InputError, ModelError
from ..runtime._manifest import path_stamp
from ._nets import LRCSNet, UNet3D

__all__ = ["Model", "create", "save", "load", "available", "register", "DEFAULT_NORMALIZATION"]

FORMAT = "bigseg-model"
VERSION = 1

#: What a model's input must be: grey values mapped linearly so that the global 0.5 and 99.5
#: percentiles of the volume become 0 and 1, clipped to [0, 1], i.e.
#: ``bigseg.filters.normalize(vol, low=0.5, high=99.5)``.
DEFAULT_NORMALIZATION: dict[str, Any] = {"method": "percentile", "low": 0.5, "high": 99.5, "clip": True,
                                         "function": "bigseg.filters.normalize"}

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], tuple[int, ...]]] = {
    "lrcsnet": (LRCSNet, (128, 128)),
    "unet3d": (UNet3D, (64, 64, 64)),
}


def register(name: str, factory: Callable[..., nn.Module], default_patch: tuple[int, ...]) -> None:
    """Add an architecture: ``factory(in_channels, out_channels, **kwargs)`` → ``nn.Module`` whose
    ``ndim`` attribute is 2 or 3.

    Parameters
    ----------
    name : the architecture's name, as :func:`create` and checkpoints name it (replaces one of
        that name).
    factory : the callable above.
    default_patch : its window in voxels, (y, x) for a 2D net or (z, y, x) for a 3D one.
    """
    _REGISTRY[str(name)] = (factory, tuple(int(p) for p in default_patch))


def arch_defaults(arch: str) -> dict[str, Any]:
    """The keyword arguments ``arch``'s factory takes, with their default values."""
    import inspect

    factory = _REGISTRY[arch][0]
    return {n: p.default for n, p in inspect.signature(factory).parameters.items()
            if p.default is not inspect.Parameter.empty}


def available() -> list[str]:
    """Registered architecture names."""
    return sorted(_REGISTRY)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def hash_weights(h: Any, module: nn.Module) -> None:
    """Feed ``module``'s weights (names, dtypes, shapes, bytes; sorted by name) to the hash ``h``."""
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        t = t.detach().cpu().contiguous()
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


class Model(nn.Module):
    """A segmentation network plus what is needed to use it.

    Attributes
    ----------
    arch : registered architecture name ("lrcsnet", "unet3d")
    arch_kwargs : dict of the architecture's keyword arguments
    phases : list[str], phase names indexed by output channel / label value
    patch : tuple of 2 (y, x) or 3 (z, y, x) ints, the window size it was trained on
    ndim : 2 (applied slice by slice) or 3
    normalization : dict describing the input the model expects, e.g.
        ``{"method": "percentile", "low": 0.5, "high": 99.5}`` (global percentiles → 0 and 1)
    provenance : dict: training data, seed, epochs, scores, hardware, duration
    net : the ``nn.Module``
    checkpoint : path of the file it was loaded from while the weights still equal the file's
        (used by ``bigseg.infer`` to ship a path rather than the weights), else None

    ``forward(x)`` maps (N, 1, *patch) float32 to (N, C, *patch) logits (any spatial size works).
    """

    def __init__(
        self,
        arch: str,
        *,
        phases: Any = None,
        patch: Any = None,
        normalization: dict | None = None,
        provenance: dict | None = None,
        arch_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        arch = parse_choice("arch", arch, list(_REGISTRY))
        factory, default_patch = _REGISTRY[arch]
        self.phases = parse_phases(phases if phases is not None else ["pore", "cbd", "active"])
        if len(self.phases) < 2:  # a softmax over one channel is 1 everywhere: nothing to segment
            raise InputError(f"Expected `phases` to name at least two phases (the network's softmax is over "
                             f"phases). Got {self.phases!r} instead: add the background, e.g. ['pore', "
                             f"{self.phases[0]!r}].")
        kwargs = dict(arch_kwargs or {})
        kwargs.pop("in_channels", None)
        kwargs.pop("out_channels", None)
        try:
            self.net = factory(1, len(self.phases), **kwargs)
        except TypeError as exc:
            raise InputError(f"Expected keyword arguments of architecture {arch!r}. Got {kwargs!r} instead ({exc}).") from None
        self.arch = arch
        self.arch_kwargs = _jsonable(kwargs)
        ndim = int(getattr(self.net, "ndim", len(default_patch)))
        if patch is None:
            patch = default_patch
        parsed = whole_numbers(patch, ndim)
        if parsed is None or len(parsed) != ndim or not all(p > 0 for p in parsed):
            raise InputError(f"Expected `patch` of {ndim} positive ints for {arch!r}. Got {patch!r} instead.")
        patch = parsed
        self.patch = patch
        self.ndim = ndim
        if normalization is not None and not isinstance(normalization, Mapping):  # ("abc": dict()'s ValueError)
            raise InputError(f"Expected `normalization` to be a mapping such as {DEFAULT_NORMALIZATION}. "
                             f"Got {normalization!r} instead.")
        self.normalization = dict(normalization) if normalization is not None else dict(DEFAULT_NORMALIZATION)
        self.provenance = dict(provenance or {})
        self._source: tuple[str, str, Any] | None = None  # (path, content key at load, the file then: path_stamp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, C, *spatial) of ``x``, a (N, 1, *spatial) float32 batch (any spatial size)."""
        return self.net(x)

    @property
    def normalisation(self) -> dict:
        """The contract's spelling (../API.md) of :attr:`normalization`: the same dict."""
        return self.normalization

    def training_summary(self) -> dict[str, Any]:
        """:attr:`provenance` without the per-epoch histories (its own and those of the models it was
        fine-tuned from, ``parent``): what a run's record keeps of how its model was made (data,
        seeds, epochs, scores, hardware), a few KiB instead of hundreds of epochs' rows."""
        def short(p: Any) -> Any:
            if not isinstance(p, Mapping):
                return p
            return {k: short(v) if k == "parent" else v for k, v in p.items() if k != "history"}

        return _jsonable(short(self.provenance))

    # ---------------------------------------------------------------- metadata and hashing
    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description (everything but the weights)."""
        return _jsonable(
            {
                "arch": self.arch,
                "arch_kwargs": self.arch_kwargs,
                "phases": list(self.phases),
                "patch": list(self.patch),
                "ndim": self.ndim,
                "normalization": self.normalization,
                "provenance": self.provenance,
            }
        )

    def checkpoint_key(self) -> str:
        """Stable content hash of the architecture, phases, patch, normalisation and weights
        (not provenance): equal models give equal keys in any process."""
        h = hashlib.sha256()
        meta = self.metadata()
        meta.pop("provenance")
        h.update(json.dumps(meta, sort_keys=True).encode())
        hash_weights(h, self)
        return "bigseg:" + h.hexdigest()[:32]

    @property
    def checkpoint(self) -> str | None:
        """The file this model was loaded from, while that file is the one loaded (not written over
        since) and the model still holds its weights; else ``None`` (then workers get the weights
        themselves)."""
        if self._source is None:
            return None
        path, key, file = self._source
        # the file as it was loaded: one written over since (retrained in place, by another process
        # or thread) holds other weights, which workers loading it would use under this model's key
        if path_stamp(path) == file and self.checkpoint_key() == key:
            return path
        return None

    def clone(self) -> "Model":
        """A deep copy without the link to a checkpoint file."""
        m = copy.deepcopy(self)
        m._source = None
        return m

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, phases={self.phases}, patch={self.patch}"

    def __repr__(self) -> str:
        """What the model is and was trained on, in a few lines (torch's repr, every layer, was ~50
        lines for the default model in a notebook): the layers are ``print(model.net)``."""
        try:
            return self._summary()
        except Exception:  # a checkpoint's metadata of other types: a repr must not raise
            return f"Model({self.extra_repr()})"

    def _summary(self) -> str:
        prov, norm = self.provenance or {}, self.normalization or {}
        size = sum(p.numel() for p in self.parameters())
        lines = [f"Model({self.extra_repr()}, {size:,} parameters)"]
        if norm:
            lines.append("input: " + (f"global percentiles {norm['low']:g}-{norm['high']:g} -> 0-1"
                                      if norm.get("method") == "percentile" and "low" in norm and "high" in norm
                                      else ", ".join(f"{k}={v}" for k, v in norm.items() if k != "function")))
        data = prov.get("data")
        if "epochs" in prov:
            kind = data.get("kind", "given") if isinstance(data, dict) else "given"
            parent = " from " + str(prov["init"]) if prov.get("init") else ""
            lines.append(f"trained{parent} on {kind} data: {prov['epochs']} epochs"
                         + (f", {prov['date']}" if prov.get("date") else ""))
        else:
            lines.append("untrained" if not prov else f"provenance: {', '.join(map(str, prov))}")
        return "\n  ".join(lines) + "\n  (layers: print(model.net); training record: model.provenance)"


def create(
    arch: str,
    *,
    phases: Any = None,
    patch: Any = None,
    normalization: dict | None = None,
    provenance: dict | None = None,
    **arch_kwargs: Any,
) -> Model:
    """A freshly initialised :class:`Model` of a registered architecture.

    Parameters
    ----------
    arch : a registered architecture name (:func:`available`: ``"lrcsnet"``, ``"unet3d"``).
    phases : phase names by output channel / label value, at least two (default
        ``["pore", "cbd", "active"]``).
    patch : the window, 2 (y, x) or 3 (z, y, x) positive ints in voxels as the net is 2D or 3D;
        default the architecture's registered patch.
    normalization : the input the model expects, a mapping (default
        :data:`DEFAULT_NORMALIZATION`, percentiles 0.5 and 99.5 → 0 and 1).
    provenance : a dict of how it was made (training data, seed, ...); default empty.
    **arch_kwargs : the architecture's own keywords (e.g. ``kernels``, ``channels``).

    Examples
    --------
    >>> m = create("lrcsnet", kernels=16, kernel_size=5, patch=(64, 64))
    >>> m = create("unet3d", channels=(16, 32, 64), norm="instance", up="trilinear")
    """
    return Model(arch, phases=phases, patch=patch, normalization=normalization, provenance=provenance, arch_kwargs=arch_kwargs)


def save(model: Model, path: str | os.PathLike, *, overwrite: bool = False, half: bool = False) -> str:
    """Write ``model`` to ``path`` in the safe checkpoint format; returns the path.

    An existing file is replaced only with ``overwrite=True``; the file appears whole or not at
    all (written beside it, then renamed). Weights are stored as float32 tensors, or float16
    with ``half=True`` (half the size; they are cast back to float32 on load, so outputs differ
    by float16 rounding of the weights).

    Parameters
    ----------
    model : a bigseg :class:`Model`.
    path : the checkpoint file (e.g. ``model.pt``; its folder is made if missing).
    overwrite : replace an existing file (default False: refused).
    half : store the weights as float16 (default False: float32).
    """
    from ..errors import InputError, OutputExistsError

    if not isinstance(model, Model):
        raise ModelError(f"Expected `model` to be a bigseg Model. Got {type(model).__name__} instead.")
    overwrite, half = parse_flag("overwrite", overwrite), parse_flag("half", half)
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):  # ("": pathlib's ValueError)
        raise InputError(f"Expected `path` to be a file path (e.g. model.pt). Got {path!r} instead.")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"Expected `path` to be a file path (e.g. model.pt). Got {path!r}, a folder.")
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(f"Expected `path` {path!r} not to exist (pass overwrite=True). It exists.")
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    if half:
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    blob = {"format": FORMAT, "version": VERSION, "meta": json.dumps(model.metadata(), sort_keys=True), "state": state}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_torch(blob, path)  # (the umask's mode)
    return path


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` into ``path``, written whole or not at all; built in memory first, so a
    full disk is said of ``path`` (:func:`bigseg.runtime._files.write_bytes`), not as torch's
    "unexpected pos 832 vs 726" with no path."""
    from ..runtime._files import write_bytes

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getbuffer())


def load_refusal(exc: Exception) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one line: torch's own words (after
    "WeightsUnpickler error:") without its advice to pass weights_only=False, which would run
    whatever code the file holds."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # (torch marks up a warning in terminal bold)
    why = (text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text
           else re.sub(r"Weights only load failed\..*?trusted source\.", " ", text, flags=re.S))
    why = re.split(r"Please use|Please file an issue|Check the documentation", why)[0]
    return f"{type(exc).__name__}: {' '.join(why.split()) or 'no reason given'}"


def _read(fh: Any, where: str) -> dict:
    try:
        blob = torch.load(fh, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for forbidden globals, RuntimeError for bad zips
        detail = load_refusal(exc)
        if "Unsupported operand" in detail:  # not a pickle of tensors at all (e.g. a .npy)
            detail += " (not a torch checkpoint: a file of another kind?)"
        if "TorchScript" in str(exc):
            detail = ("it is a TorchScript archive (code, not weights): if you trust it, pass "
                      "torch.jit.load(path) to predict(..., patch=...) instead")
        elif "weights_only" not in str(exc).lower().replace(" ", "_"):  # not refused: not a checkpoint at all
            raise ModelError(f"Expected a bigseg checkpoint at {where}. Got a file torch.load cannot read "
                             f"({type(exc).__name__}): a file of another kind, or one cut short?") from None
        raise ModelError(f"Expected a safe bigseg checkpoint at {where}. It could not be read safely (weights only, "
                         f"no code run): {detail}") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelError(f"Expected a bigseg checkpoint (format {FORMAT!r}) at {where}. Got something else.")
    if blob.get("version") != VERSION:
        raise ModelError(f"Expected checkpoint version {VERSION} at {where}. Got {blob.get('version')!r} instead.")
    return blob


def _build(blob: dict, where: str) -> Model:
    try:
        meta = json.loads(blob["meta"])
        args = dict(phases=meta["phases"], patch=meta["patch"], normalization=meta.get("normalization"),
                    provenance=meta.get("provenance"), arch_kwargs=meta.get("arch_kwargs"))
        with torch.device("meta"):  # shapes only, no memory: a few bytes of metadata can ask for any size of network
            shapes = Model(meta["arch"], **args).state_dict()
        unfit = _unfit_weights(shapes, blob["state"])
        if unfit:  # said in one line (torch's own message lists every key, one per line), before any is built
            raise ModelError(f"Expected a consistent bigseg checkpoint at {where}: its weights to fit its architecture "
                             f"{meta['arch']!r} ({meta.get('arch_kwargs') or 'default arguments'}). Got {unfit}: "
                             "not built.")
        model = Model(meta["arch"], **args)
        model.load_state_dict(blob["state"], strict=True)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"Expected a consistent bigseg checkpoint at {where}. {type(exc).__name__}: {exc}") from None
    return model.eval()


def _unfit_weights(want: dict[str, Any], got: Any) -> str:
    """What of a checkpoint's ``got`` state does not fit the model's ``want``: missing, unexpected
    and other-shaped tensors, counted, the first of each named (``""``: it fits)."""
    if not isinstance(got, dict):
        return f"weights of type {type(got).__name__}, not a state dict"

    def first(keys: list[str], shown: Callable[[str], str] = str) -> str:
        return ", ".join(shown(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")

    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    shaped = [k for k in want if k in got and tuple(getattr(got[k], "shape", ())) != tuple(want[k].shape)]
    def both(k: str) -> str:
        return f"{k}: {tuple(got[k].shape)} in the file, {tuple(want[k].shape)} in the model"

    said = [f"{len(missing)} missing ({first(missing)})" if missing else "",
            f"{len(unexpected)} unexpected ({first(unexpected)})" if unexpected else "",
            f"{len(shaped)} of another shape ({first(shaped, both)})" if shaped else ""]
    return "; ".join(x for x in said if x)



def load(name_or_path: str | os.PathLike) -> Model:
    """Load a model: ``"default"`` (bundled, offline) or a checkpoint path.

    Never executes code from the file (``torch.load(weights_only=True)``).

    Parameters
    ----------
    name_or_path : ``"default"`` or the path of a checkpoint written by :func:`save`.

    Returns
    -------
    The :class:`Model`, in evaluation mode on the CPU.

    Raises
    ------
    ModelError : unknown name, missing file, unsafe or inconsistent checkpoint

    Examples
    --------
    >>> import torch
    >>> from bigseg import models
    >>> model = models.load("default")
    >>> model.phases, model.patch, model.ndim
    (['pore', 'cbd', 'active'], (32, 32, 32), 3)
    >>> isinstance(model, torch.nn.Module), model.training
    (True, False)
    """
    if isinstance(name_or_path, str) and name_or_path == "default":
        ref = resources.files("bigseg.models").joinpath("weights/default.pt")
        if not ref.is_file():
            raise ModelError("Expected the bundled default model bigseg/models/weights/default.pt. It is missing from this installation.")
        with resources.as_file(ref) as p:
            file = path_stamp(str(p))  # (before it is read: a file written over meanwhile is not this one)
            model = _build(_read(str(p), "bundled 'default'"), "bundled 'default'")
            model._source = (str(p), model.checkpoint_key(), file)
        return model
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ModelError(f"Expected `name_or_path` to be 'default' or a checkpoint path. Got {type(name_or_path).__name__} instead.")
    path = os.fspath(name_or_path)
    if not os.path.isfile(path):
        inside = sorted(f for f in os.listdir(path) if f.endswith(".pt")) if os.path.isdir(path) else []
        hint = (f", a folder: its checkpoints are files in it ({', '.join(inside[-3:])}; a training's "
                f"checkpoint_dir holds best.pt and epoch_NNN.pt)" if inside else
                ", a folder" if os.path.isdir(path) else "")
        raise ModelError(f"Expected `name_or_path` to be 'default' or an existing checkpoint file. Got {path!r}{hint} "
                         f"instead.")
    file = path_stamp(path)
    model = _build(_read(path, repr(path)), repr(path))
    model._source = (os.path.abspath(path), model.checkpoint_key(), file)
    return model
