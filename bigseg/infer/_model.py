"""The model side of inference: resolve what the user passed, ship it to workers once, run it.

A model reaches the workers as ONE graph key (the serialised module, or a checkpoint path);
each worker process deserialises it once and keeps it in :data:`_CACHE`, keyed by the content
hash (or ``checkpoint_key()``) and the device. Every task then looks it up. The counters in
:func:`worker_stats` let tests and users check that (``client.run(worker_stats)``).
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import itertools
import os
import threading
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError, ModelError

__all__ = ["ModelSpec", "resolve_model", "worker_stats", "reset_worker_stats", "run_patches", "cpu_streams", "ACTIVATION_BYTES_PER_VOXEL"]

#: Rough bytes of activations per input voxel of a patch in a forward pass (float32), used by
#: the memory budget and to size GPU batches: a 3D U-Net with 16 base channels keeps a few
#: 16-channel full-resolution tensors alive (4 × 16 × 4 B = 256 B per voxel).
ACTIVATION_BYTES_PER_VOXEL = 256

_CACHE: OrderedDict[tuple[str, str, bool], Any] = OrderedDict()  # (model key, device, channels_last)
_CACHE_SIZE = 4
_LOADS: Counter[str] = Counter()
_PATCHES = Counter()
_LOCK = threading.Lock()
_DEVICE_LOCKS: dict[str, threading.Lock] = {}
# within :func:`resolved_once`: (model, patch, phases, device, shape) -> what resolve_model returned
_RESOLVED: contextvars.ContextVar[dict[Any, Any] | None] = contextvars.ContextVar("bigseg_resolved_models",
                                                                                  default=None)


def worker_stats() -> dict[str, Any]:
    """This process's counters: ``loads`` (model deserialisations per model key), ``patches``
    (windows evaluated) and ``pid``. Query all workers with ``client.run(worker_stats)``."""
    return {"loads": dict(_LOADS), "patches": int(_PATCHES["n"]), "pid": os.getpid()}


def reset_worker_stats(clear_cache: bool = True) -> None:
    """Zero the counters of :func:`worker_stats` (and by default drop the cached models) of this process.

    Parameters
    ----------
    clear_cache : True (default): also drop the models this process has loaded (the next
        prediction deserialises them again).
    """
    with _LOCK:
        _LOADS.clear()
        _PATCHES.clear()
        if clear_cache:
            _CACHE.clear()


@dataclass
class ModelSpec:
    """What inference needs to know about a model, resolved on the client."""

    ndim: int
    patch: tuple[int, ...]
    phases: list[str]
    n_classes: int
    key: str
    blob: bytes | None = None
    checkpoint: str | None = None
    normalization: Any = None
    param_bytes: int = 0
    extra: dict = field(default_factory=dict)
    #: the patch before it was capped at the volume (a bigseg Model's); None where no cap applies
    #: (a plain module's explicit patch): triplanar's y and x planes cap it at their own extents
    uncapped: tuple[int, ...] | None = None


def _torch():
    import torch

    return torch


def check_device(device: Any) -> Any:
    """``torch.device(device)``, refused by name (InputError) where PyTorch cannot use it: not a
    device name ('gpu'), CUDA on a machine where it sees no GPU, or a GPU index beyond those
    present."""
    import torch

    try:
        want = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"Expected `device` to be 'cpu', 'cuda' or 'cuda:N'. Got {device!r} instead.") from None
    if want.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"Expected `device` {str(want)!r} only where PyTorch sees a CUDA GPU. Got it on a machine "
                         f"where it sees none (torch {torch.__version__}); use device='cpu', or leave it unset on a "
                         f"GPU cluster: each worker then uses its GPU.")
    if want.type == "cuda" and want.index is not None and want.index >= torch.cuda.device_count():
        raise InputError(f"Expected `device` among the {torch.cuda.device_count()} CUDA GPU(s) here. "
                         f"Got {str(want)!r} instead.")
    return want


def _model_device(module: Any):
    torch = _torch()
    for t in itertools.chain(module.parameters(), module.buffers()):
        return t.device
    return torch.device("cpu")


def _parse_patch(patch: Any, ndim: int | None) -> tuple[int, ...]:
    from .._parse import _fail

    if isinstance(patch, (int, np.integer)) and not isinstance(patch, bool):
        if ndim is None:
            raise _fail("patch", "to be a tuple of 2 or 3 positive integers for a plain torch module", patch)
        patch = (int(patch),) * ndim
    try:
        items = tuple(patch)
    except TypeError:
        raise _fail("patch", "to be a tuple of 2 or 3 positive integers", patch) from None
    if len(items) not in (2, 3) or not all(
        isinstance(p, (int, np.integer)) and not isinstance(p, bool) and p > 0 for p in items
    ):
        raise _fail("patch", "to be a tuple of 2 or 3 positive integers", patch)
    return tuple(int(p) for p in items)


_TORCHSCRIPT = b"bigseg-torchscript\0"


def _serialise(module: Any) -> bytes:
    """The bytes a worker rebuilds ``module`` from: cloudpickle, or ``torch.jit.save`` for a
    TorchScript module (which does not pickle)."""
    import cloudpickle

    torch = _torch()
    if isinstance(module, torch.jit.ScriptModule):
        import io

        buf = io.BytesIO()
        torch.jit.save(module, buf)
        return _TORCHSCRIPT + buf.getvalue()
    if _model_device(module).type != "cpu":
        module = copy.deepcopy(module).cpu()
    return cloudpickle.dumps(module)


def _content_key(module: Any, blob: bytes) -> str:
    """A hash of ``module`` by its content: its class, attributes and tensors (type, dtype, shape,
    values). Not of ``blob``: cloudpickle writes each tensor's storage under its memory address,
    so equal modules (the same weights, another instance or a copy) got other keys, and the
    results' ``attrs["model_key"]`` named other weights for the same ones."""
    if blob.startswith(_TORCHSCRIPT):
        return "sha256:" + hashlib.sha256(blob).hexdigest()[:32]
    import io

    import cloudpickle

    torch = _torch()

    class _ByContent(cloudpickle.CloudPickler):
        def persistent_id(self, obj: Any) -> Any:
            if not isinstance(obj, torch.Tensor):
                return None
            try:
                t = obj.detach().cpu().contiguous().reshape(-1)
                digest = hashlib.sha256(t.view(torch.uint8).numpy().tobytes()).hexdigest()
            except (RuntimeError, TypeError):  # a layout with no plain bytes (sparse, quantised): as pickled
                return None
            return ("tensor", type(obj).__qualname__, str(obj.dtype), tuple(obj.shape), bool(obj.requires_grad), digest)

    buf = io.BytesIO()
    _ByContent(buf).dump(module if _model_device(module).type == "cpu" else copy.deepcopy(module).cpu())
    return "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()[:32]


def _deserialise(blob: bytes) -> Any:
    if blob.startswith(_TORCHSCRIPT):
        import io

        return _torch().jit.load(io.BytesIO(blob[len(_TORCHSCRIPT):]), map_location="cpu")
    import cloudpickle

    return cloudpickle.loads(blob)


def load_model(model: Any, device: Any = None) -> Any:
    """A model named by ``model`` (``"default"`` or a checkpoint path) loaded, on ``device`` where
    one is asked for; anything else (the caller's own module) returned as it is, never moved."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    from .. import models as _models

    try:
        net = _models.load(model)
    except ModelError as exc:  # (said as load's `name_or_path`; as train does for `init`)
        raise ModelError(str(exc).replace("`name_or_path`", "`model`")) from None
    return net.to(check_device(device)) if device is not None else net


@contextmanager
def resolved_once():
    """Within the block, :func:`resolve_model` checks a model once for each patch, phases, device
    and volume shape asked: the frames of a series share one model and shape, and its check (a
    forward pass of a zero patch, 0.5 s for the default model on a CPU; with a plain module also
    its serialisation and hash) ran once per frame, the series' graph taking T times as long to
    build (64 scans of 24³: 34 of 37 s)."""
    token = _RESOLVED.set({}) if _RESOLVED.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _RESOLVED.reset(token)


def resolve_model(
    model: Any,
    *,
    patch: Any = None,
    phases: Any = None,
    device: Any = None,
    shape: tuple[int, ...] | None = None,
) -> tuple[Any, ModelSpec]:
    """Turn ``model`` (a ``torch.nn.Module``, a bigseg ``Model`` or a name/path) into a
    :class:`ModelSpec`, checking it with one forward pass of a zero patch. Without ``patch``,
    the model's own patch is used. For a bigseg ``Model`` the patch (its own or an explicit
    one) is capped at the volume ``shape``: its nets take any size, and zero-padding a small
    volume up to a large patch would show the model an image it never saw (with instance
    normalisation, the padding's share of each window shifts every feature: an explicit 64³
    patch on a 48-slice volume dropped the default model's pore IoU from 0.70 to 0.19). A plain
    torch module keeps an explicit patch (it may need that exact size) and is zero-padded.

    Raises
    ------
    ModelError : not a module; output channels disagree with its phases; output shape is not
        ``(N, C, *patch)``; a 2D model given 3D patches; on another device than ``device``.
    """
    torch = _torch()
    from .._parse import parse_phases
    from ..io import DEFAULT_PHASES

    model = load_model(model, device)
    memo = _RESOLVED.get()
    slot = (id(model), repr(patch), repr(phases), str(device), shape)
    if memo is not None and slot in memo:
        return memo[slot]
    if not isinstance(model, torch.nn.Module):
        raise ModelError(
            f"Expected `model` to be a torch.nn.Module, a bigseg Model or a checkpoint name/path. "
            f"Got {type(model).__name__} instead."
        )
    m_ndim = getattr(model, "ndim", None)
    m_patch = getattr(model, "patch", None)
    if patch is None and m_patch is None:
        raise InputError("Expected `patch` (e.g. (64, 64, 64)) for a plain torch module. Got None instead.")
    ppatch = _parse_patch(patch if patch is not None else m_patch, m_ndim if m_ndim in (2, 3) else None)
    uncapped = None
    if shape is not None and (patch is None or m_patch is not None):
        uncapped = ppatch
        ppatch = tuple(min(p, int(s)) for p, s in zip(ppatch, shape[-len(ppatch):]))
    ndim = int(m_ndim) if m_ndim in (2, 3) else len(ppatch)
    if ndim == 2 and len(ppatch) == 3:
        raise ModelError(
            f"Expected `patch` with 2 values (y, x) for a 2D model (slice by slice). Got {ppatch}, a 3D patch, instead."
        )
    if ndim == 3 and len(ppatch) == 2:
        raise ModelError(f"Expected `patch` with 3 values (z, y, x) for a 3D model. Got {ppatch} instead.")

    m_dev = _model_device(model)
    if device is not None:
        want = check_device(device)
        if want.type != m_dev.type or (want.index is not None and m_dev.index is not None and want.index != m_dev.index):
            raise ModelError(
                f"Expected `model` on the requested `device` {str(want)!r}. Got a model on {str(m_dev)!r}; "
                f"move it with model.to({str(want)!r}) or pass device={str(m_dev)!r}."
            )

    # one forward pass of a zero patch: output channels and shape
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = model(torch.zeros((1, 1, *ppatch), dtype=torch.float32, device=m_dev))
    except Exception as exc:
        full = _parse_patch(patch if patch is not None else m_patch, m_ndim if m_ndim in (2, 3) else None)
        small = (f" The window was cut to the volume's extent {ppatch} (the model's is {full}): the volume may be "
                 "too small for the network's poolings; segment a larger region." if tuple(ppatch) != tuple(full) else "")
        raise ModelError(f"Expected `model` to map (N, 1, *patch) = {(1, 1, *ppatch)} to logits. It failed: {exc}."
                         f"{small}") from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 + len(ppatch) or tuple(out.shape[2:]) != ppatch or out.shape[0] != 1:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"Expected `model` to map {(1, 1, *ppatch)} to (1, C, *patch) logits. Got {shape} instead.")
    n_classes = int(out.shape[1])
    if n_classes < 2:  # softmax over one channel: probability 1 everywhere (the labels path failed in the blend)
        raise ModelError(f"Expected `model` to output one logit channel per phase, at least two (softmax over "
                         f"phases). Got {n_classes} channel for {(1, 1, *ppatch)}: a one-channel (sigmoid) network "
                         "needs a second channel for its background.")

    m_phases = phases if phases is not None else getattr(model, "phases", None)
    if m_phases is None:
        m_phases = list(DEFAULT_PHASES) if n_classes == 3 else [f"phase{i}" for i in range(n_classes)]
    m_phases = parse_phases(m_phases)
    if len(m_phases) != n_classes:
        given = f"`phases` {m_phases}" if phases is not None else f"its {len(m_phases)} phases {m_phases}"
        raise ModelError(
            f"Expected the model's output channels to match {given}. "
            f"Got {n_classes} output channels instead{' (one per phase)' if phases is not None else ''}."
        )

    checkpoint = getattr(model, "checkpoint", None)
    key_fn = getattr(model, "checkpoint_key", None)
    blob = None
    if checkpoint is not None and os.path.exists(str(checkpoint)):
        key = key_fn() if callable(key_fn) else f"ckpt:{os.path.abspath(str(checkpoint))}:{os.path.getmtime(str(checkpoint))}"
        checkpoint = str(checkpoint)
    else:
        checkpoint = None
        blob = _serialise(model)
        key = _content_key(model, blob)
    param_bytes = sum(t.numel() * t.element_size() for t in itertools.chain(model.parameters(), model.buffers()))
    spec = ModelSpec(
        ndim=ndim, patch=ppatch, phases=m_phases, n_classes=n_classes, key=str(key), blob=blob,
        checkpoint=checkpoint, normalization=getattr(model, "normalization", None), param_bytes=int(param_bytes),
        uncapped=uncapped,
    )
    if memo is not None:  # (the model kept with it: its id is not reused while the block lasts)
        memo[slot] = (model, spec)
    return model, spec


# ----------------------------------------------------------------------------- worker side


def _worker_device(device: str | None):
    torch = _torch()
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def cached_module(key: str, blob: bytes | None, checkpoint: str | None, device: Any, *, channels_last: bool = False):
    """The model for ``key`` on ``device`` (in the ``channels_last`` memory layout or not),
    deserialised at most once per process for each."""
    slot = (key, str(device), bool(channels_last))
    with _LOCK:
        module = _CACHE.get(slot)
        if module is not None:
            _CACHE.move_to_end(slot)
            return module
        if blob is not None:
            module = _deserialise(blob)
        else:
            from .. import models as _models

            module = _models.load(checkpoint)
            if key.startswith("bigseg:") and module.checkpoint_key() != key:  # (a bigseg Model's key)
                raise ModelError(f"Expected the checkpoint {checkpoint!r} to hold the model being run (key {key}). Got "
                                 f"other weights ({module.checkpoint_key()}): the file was written over while the "
                                 f"model ran (retrained in place?); run again, or save a retrained model elsewhere.")
        module = module.to(device).eval()
        if channels_last:  # channels_last_3d for a 3D net's 5D weights; a 2D net's 4D ones take channels_last
            torch = _torch()
            is_3d = any(t.dim() == 5 for t in itertools.chain(module.parameters(), module.buffers()))
            module = module.to(memory_format=torch.channels_last_3d if is_3d else torch.channels_last)
        _LOADS[key] += 1
        _CACHE[slot] = module
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return module


def _autocast_dtype(autocast: str | None, device: Any):
    torch = _torch()
    if autocast in (None, "off"):
        return None
    if autocast == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[autocast]


def _tf32_flags(torch: Any) -> list[tuple[Any, str, Any]]:
    """(object, attribute, IEEE value) of the switches that let float32 convolutions and matrix
    products run as TF32: torch's long-standing ``allow_tf32`` pair, which keeps cuDNN's conv and
    rnn settings alike (legacy readers such as inductor's go on working); on torch >= 2.9 where
    someone set the newer per-operator precisions apart (the legacy getter then refuses to read
    them), those precisions themselves."""
    cudnn, mm = torch.backends.cudnn, torch.backends.cuda.matmul
    try:
        cudnn.allow_tf32, mm.allow_tf32  # noqa: B018  (raises where the newer settings disagree)
        return [(cudnn, "allow_tf32", False), (mm, "allow_tf32", False)]
    except RuntimeError:
        return [(cudnn.conv, "fp32_precision", "ieee"), (cudnn.rnn, "fp32_precision", "ieee"),
                (mm, "fp32_precision", "ieee")]


_IEEE_LOCK = threading.Lock()
_IEEE_STATE: dict[str, Any] = {"depth": 0, "saved": []}


def _set_flags(flags: list[tuple[Any, str, Any]]) -> None:
    for obj, name, value in flags:
        setattr(obj, name, value)


@contextmanager
def ieee_float32(device: Any):
    """Float32 convolutions and matrix products in IEEE precision on a CUDA device for the
    duration (cuDNN's default on Ampere and newer is TF32, a 10-bit mantissa: ~1e-3 off the
    CPU's probabilities). The flags are process-wide: the first pass to enter sets them, the last
    to leave restores them (passes on several GPUs of one process overlap). Nothing changes on
    the CPU."""
    torch = _torch()
    if getattr(device, "type", None) != "cuda":
        yield
        return
    with _IEEE_LOCK:
        if _IEEE_STATE["depth"] == 0:
            # only what is not IEEE already is switched (and so restored): the state after is the state before
            flags = [(obj, name, value) for obj, name, value in _tf32_flags(torch) if getattr(obj, name) != value]
            saved = [(obj, name, getattr(obj, name)) for obj, name, _ in flags]
            try:
                _set_flags(flags)
            except Exception:  # none left half set
                _set_flags(saved)
                raise
            _IEEE_STATE["saved"] = saved
        _IEEE_STATE["depth"] += 1
    try:
        yield
    finally:
        with _IEEE_LOCK:
            _IEEE_STATE["depth"] -= 1
            if _IEEE_STATE["depth"] == 0:
                _set_flags(_IEEE_STATE["saved"])


def default_batch_size(device: Any, patch: tuple[int, ...]) -> int:
    """4 windows on CPU; on a GPU as many as half its free memory holds (rough activation
    estimate :data:`ACTIVATION_BYTES_PER_VOXEL`), between 1 and 64."""
    if device.type != "cuda":
        return 4
    torch = _torch()
    free, _total = torch.cuda.mem_get_info(device)
    per = int(np.prod(patch)) * ACTIVATION_BYTES_PER_VOXEL
    return int(max(1, min(64, free // 2 // max(per, 1))))


def run_patches(
    x: np.ndarray,
    *,
    module: Any,
    device: Any,
    n_classes: int,
    plane_axis: int | None,
    autocast: str | None,
    tta: bool,
    channels_last: bool,
    lock: bool = True,
) -> Any:
    """Softmax probabilities of a batch of windows.

    Parameters
    ----------
    x : (N, pz, py, px) float32 windows (NumPy, or a torch tensor: then the result stays a
        tensor on ``device``); for a 2D model one of the axes (``plane_axis``) is 1 and the model
        sees (N, 1, H, W) images of the other two axes
    lock : hold this device's lock during the forward passes (off when the caller holds it)

    Returns
    -------
    (N, C, pz, py, px) float32 probabilities (softmax over C in float32; with ``tta`` the mean
    over all flips of the spatial axes, each flipped back).
    """
    torch = _torch()
    as_tensor = isinstance(x, torch.Tensor)
    t = (x if as_tensor else torch.from_numpy(np.ascontiguousarray(x))).to(device)[:, None]
    if plane_axis is not None:
        t = t.squeeze(2 + plane_axis)
    spatial = [d for d in range(2, t.ndim) if t.shape[d] > 1]
    flips = [()] + ([c for r in range(1, len(spatial) + 1) for c in itertools.combinations(spatial, r)] if tta else [])
    amp = _autocast_dtype(autocast, device)
    total = None

    def forward(xs: Any) -> Any:  # softmax probabilities of the windows (float32 exact when not autocast)
        with torch.autocast(device_type=device.type, dtype=amp) if amp is not None else ieee_float32(device):
            y = module(xs)
            if not isinstance(y, torch.Tensor) or y.shape[0] != xs.shape[0] or y.shape[1] != n_classes or y.shape[2:] != xs.shape[2:]:
                shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
                raise ModelError(f"Expected the model to output {(xs.shape[0], n_classes, *xs.shape[2:])}. Got {shape} instead.")
            return y.float().softmax(1)

    with (device_lock(device) if lock else nullcontext()), torch.inference_mode():
        for f in flips:
            xi = t.flip(f) if f else t
            if channels_last and xi.ndim in (4, 5):  # (N, C, H, W): a 2D model's slices
                xi = xi.contiguous(memory_format=torch.channels_last_3d if xi.ndim == 5 else torch.channels_last)
            p = forward(xi)
            if f:
                p = p.flip(f)
            total = p if total is None else total + p
    assert total is not None
    if len(flips) > 1:
        total = total / len(flips)
    if plane_axis is not None:
        total = total.unsqueeze(2 + plane_axis)
    with _LOCK:
        _PATCHES["n"] += int(x.shape[0])
    return total.float() if as_tensor else total.float().cpu().numpy()


_STREAM_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def cpu_streams() -> tuple[int, int]:
    """``(streams, threads)``: forward passes run side by side on this process's CPU and the
    intra-op threads of each. Two single-threaded passes do ~15 % more windows per second than
    one pass on two threads (a 3D U-Net's convolutions scale sub-linearly across cores and a
    lone pass's threads meet at every layer), so ``predict`` hands each of ``streams`` threads
    batches of its own (see :func:`bigseg.kernels.blend.accumulate_block_torch`). ``BIGSEG_CPU_STREAMS`` sets the
    number (1 turns it off); by default 2 when torch has 2 or more threads, each with half of
    them."""
    torch = _torch()
    total = torch.get_num_threads()
    env = os.environ.get("BIGSEG_CPU_STREAMS", "").strip()
    if env:
        n = int(env) if env.isdigit() else 0
        if n < 1:
            raise InputError(f"Expected the environment variable `BIGSEG_CPU_STREAMS` to be a positive integer. Got {env!r} instead.")
    else:
        n = 2 if total >= 2 else 1
    n = min(n, total)
    return n, max(1, total // n)


def _cpu_streams() -> tuple[ThreadPoolExecutor | None, int]:
    """``(pool, streams)``: the thread pool of :func:`cpu_streams` (made once per setting), or
    ``(None, 1)`` for one stream.

    Each pool thread sets its own intra-op thread count (OpenMP's is per thread); torch's
    process-wide default, which the setting also changes, is put back at once."""
    n, per = cpu_streams()
    if n < 2:
        return None, 1
    with _LOCK:
        pool = _STREAM_POOLS.get((n, per))
        if pool is None:
            torch = _torch()
            before = torch.get_num_threads()
            ready = threading.Barrier(n)

            def init() -> None:
                torch.get_num_threads()  # this thread's lazy intra-op set-up, before the change
                torch.set_num_threads(per)

            pool = ThreadPoolExecutor(n, thread_name_prefix="bigseg-cpu-stream", initializer=init)
            for fut in [pool.submit(ready.wait) for _ in range(n)]:  # start every thread now
                fut.result()
            torch.set_num_threads(before)
            _STREAM_POOLS[(n, per)] = pool
    return pool, n


def device_lock(device: Any) -> threading.Lock:
    """One lock per device and process: one block's windows run on a device at a time (the
    forward pass already uses every core or the whole GPU; this bounds memory to one block)."""
    with _LOCK:
        return _DEVICE_LOCKS.setdefault(str(device), threading.Lock())
