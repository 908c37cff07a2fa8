"""The training loop shared by sparse-label and synthetic training."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .._parse import parse_choice
from ..errors import InputError
from ..runtime._progress import bar_stream, showing
from ._augment import Augment
from ._loss import dice_ce_loss, iou_from_confusion

__all__ = ["fit", "resolve_device", "resolve_amp", "hardware", "History"]

_log = logging.getLogger("bigseg.train")


def resolve_device(device: Any) -> torch.device:
    """The training device: the GPU where there is one, else the CPU; a given one checked as
    inference checks it (:func:`bigseg.infer._model.check_device`)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from ..infer._model import check_device

    return check_device(device)


def resolve_amp(amp: Any, device: torch.device) -> torch.dtype | None:
    """``"auto"``/True: bfloat16 (or float16 + GradScaler) autocast on CUDA, off on CPU;
    ``"bf16"``/``"fp16"`` force a dtype (bf16 also on CPUs with AVX512-BF16); False/"off"."""
    if amp is True:
        amp = "auto"
    if amp is False or amp is None:
        amp = "off"
    amp = parse_choice("amp", amp, ["auto", "off", "bf16", "fp16"])
    if amp == "off":
        return None
    if amp == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise InputError("Expected `amp='fp16'` only on a CUDA device (use 'bf16' on CPU). Got a CPU device.")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def hardware(device: torch.device) -> str:
    """One line naming the processor/GPU and the thread count."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    from .._version import processor_name

    return f"{processor_name()}, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} logical CPUs, torch {torch.__version__}"


@dataclass
class History:
    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float = -math.inf
    stopped_early: bool = False
    timed_out: bool = False
    duration_s: float = 0.0
    steps: int = 0
    resumed_after: list[int] = field(default_factory=list)  # the epochs after which a stopped run was taken up


def _mean_iou(iou: np.ndarray) -> float:
    v = iou[np.isfinite(iou)]
    return float(v.mean()) if v.size else float("nan")


def _epoch_line(row: dict[str, Any]) -> str:
    """One line for an epoch of the history: its loss, learning rate and validation IoU."""
    ious = row.get("val_iou")
    extra = "" if ious is None else " IoU " + " ".join(f"{p}={v if v is None else round(v, 3)}" for p, v in ious.items())
    return f"epoch {row['epoch']}: loss {row['loss']:.4f}, lr {row['lr']:.2e}{extra}"


def fit(
    model: torch.nn.Module,
    *,
    batches: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]],
    validate: Callable[[torch.nn.Module], np.ndarray] | None,
    phases: list[str],
    epochs: int,
    steps_per_epoch: int,
    lr: float,
    lr_decay: float,
    batch_size: int,
    augment: Augment,
    patience: int | None,
    checkpoint_dir: str | None,
    seed: int,
    device: torch.device,
    amp: torch.dtype | None,
    progress: bool,
    max_minutes: float | None,
    weight_decay: float = 0.0,
    on_checkpoint: Callable[[str, int], None] | None = None,
    resume: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
) -> History:
    """Train ``model`` in place (Adam; learning rate ``lr * lr_decay**epoch``, stepped at the
    end of each epoch as in Su et al. 2022); restore the best-validation weights at the end.

    ``batches(n, rng)`` returns ``n`` patches ((n, 1, *patch) float32, (n, *patch) int64);
    ``validate(model)`` returns a (C, C) confusion matrix on held-back data. With a
    ``checkpoint_dir`` the state after each epoch is written there (:mod:`._resume`, with
    ``settings``, what makes the run this one); ``resume``, such a state, goes on from the epoch
    after it (``batches`` with ``getstate``/``setstate`` has its own state restored too).
    """
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=lr_decay)
    scaler = torch.amp.GradScaler("cuda") if (amp == torch.float16 and device.type == "cuda") else None
    hist = History()
    best_state: dict[str, torch.Tensor] | None = None
    t0 = time.perf_counter()
    deadline = t0 + 60 * max_minutes if max_minutes else None
    since_best = 0
    start = 0
    if resume is not None:
        start, since_best = int(resume["epoch"]), int(resume["since_best"])
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        if scaler is not None and resume.get("scaler"):
            scaler.load_state_dict(resume["scaler"])
        h = resume["history"]
        hist.epochs, hist.best_epoch, hist.best_score, hist.steps = list(h["epochs"]), h["best_epoch"], h["best_score"], h["steps"]
        hist.resumed_after = [*h["resumed_after"], start]
        best_state = resume["best_state"]
        rng.bit_generator.state = resume["rng"]
        gen.set_state(resume["torch_generator"])
        torch.set_rng_state(resume["torch_rng"])
        if hasattr(batches, "setstate"):
            batches.setstate(resume["batches"])
        t0 -= float(resume["elapsed_s"])  # the durations count the earlier run's time too
        if patience is not None and since_best >= patience:  # it stopped early: done (a larger patience goes on)
            hist.stopped_early, start = True, epochs
        for row in hist.epochs:  # a log of the resumed run tells the whole run
            _log.info(_epoch_line(row) + " (before the resume)")
    if checkpoint_dir:
        os.makedirs(checkpoint_dir, exist_ok=True)
    progress = showing(progress)  # (off too where bars are: bigseg.runtime.progress_bars(False))
    for epoch in range(start, epochs):
        model.train()
        losses: list[float] = []
        stream, leave = bar_stream()  # a line each 30 s into a log file (was a redraw each step)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=leave,
                   file=stream)
        for _ in bar:
            xb, yb = batches(batch_size, rng)
            x = torch.from_numpy(xb)
            y = torch.from_numpy(yb)
            x, y = augment(x, y, gen)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            ctx = torch.autocast(device_type=device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
            with ctx:
                logits = model(x)
            loss = dice_ce_loss(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            losses.append(float(loss.detach()))
            hist.steps += 1
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if deadline is not None and time.perf_counter() > deadline:
                hist.timed_out = True
                break
        bar.close()
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": float(opt.param_groups[0]["lr"]), "loss": float(np.mean(losses)) if losses else float("nan"),
                               "steps": len(losses), "time_s": round(time.perf_counter() - t0, 2)}
        sched.step()
        score = -row["loss"]
        if validate is not None:
            ctx = torch.autocast(device_type=device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
            with ctx:
                cm = validate(model)
            iou = iou_from_confusion(cm)
            row["val_iou"] = {p: (None if not np.isfinite(v) else round(float(v), 5)) for p, v in zip(phases, iou)}
            row["val_mean_iou"] = round(_mean_iou(iou), 5)
            score = row["val_mean_iou"]
        hist.epochs.append(row)
        if progress:
            tqdm.write(_epoch_line(row))
        else:  # for a log (``bigseg train --no-progress`` prints these as each epoch ends)
            _log.info(_epoch_line(row))
        improved = score > hist.best_score + 1e-4
        if improved or best_state is None:
            if improved:
                hist.best_score = score
            hist.best_epoch = epoch + 1
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            since_best = 0
        else:
            since_best += 1
        if checkpoint_dir and on_checkpoint is not None:
            on_checkpoint(os.path.join(checkpoint_dir, f"epoch_{epoch + 1:03d}.pt"), epoch + 1)
            if hist.best_epoch == epoch + 1:
                on_checkpoint(os.path.join(checkpoint_dir, "best.pt"), epoch + 1)
        if checkpoint_dir and len(losses) == steps_per_epoch:  # an epoch cut by max_minutes is done again on resume
            from ._resume import save_state

            save_state(checkpoint_dir, {
                "epoch": epoch + 1, "since_best": since_best, "settings": settings or {},
                "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None, "best_state": best_state,
                "history": {"epochs": hist.epochs, "best_epoch": hist.best_epoch, "best_score": hist.best_score,
                            "steps": hist.steps, "resumed_after": hist.resumed_after},
                "rng": rng.bit_generator.state, "torch_generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
                "batches": batches.getstate() if hasattr(batches, "getstate") else None,
                "elapsed_s": time.perf_counter() - t0})
        if hist.timed_out:
            break
        if patience is not None and since_best >= patience:
            hist.stopped_early = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    hist.duration_s = round(time.perf_counter() - t0, 2)
    return hist
