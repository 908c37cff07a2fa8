"""Training report of a model: curves (PNG) and per-preset, per-phase IoU (JSON).

``python -m bigseg.train._report MODEL.pt [TRAIN_REPORT.json] --json OUT.json --png OUT.png``
(used by ``scripts/train_default.sh``; without TRAIN_REPORT.json the provenance stored in the
model, with its parents, is reported). Test volumes are synthetic electrodes never seen in
training (electrode and noise seeds ``test_seed + i``, the presets' own physics).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from ..runtime._files import write_text

__all__ = ["evaluate_presets", "lineage", "plot_history", "main"]

#: What the report lists of each training stage.
_STAGE_KEYS = ("seed", "epochs", "best_epoch", "steps", "duration_s", "timed_out", "lr", "lr_decay", "batch_size", "amp",
               "hardware", "date", "init")


def lineage(provenance: dict[str, Any]) -> list[dict[str, Any]]:
    """The training stages that led to a model, oldest first: its provenance and, through
    ``provenance["parent"]``, that of each model it was fine-tuned from."""
    stages = []
    prov: dict[str, Any] | None = provenance
    while prov:
        stages.append(prov)
        prov = prov.get("parent")
    return stages[::-1]


def _joined_history(stages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[float]]:
    """All stages' epochs numbered on, and the epoch positions where a new stage starts."""
    out, starts, n = [], [], 0
    for i, st in enumerate(stages):
        if i:
            starts.append(n + 0.5)
        for h in st.get("history") or []:
            out.append({**h, "epoch": n + h["epoch"], "stage": i + 1})
        n += len(st.get("history") or [])
    return out, starts


def evaluate_presets(model: Any, *, presets: Any = None, shape: tuple[int, int, int] = (32, 128, 128), seed: int = 20_000) -> dict[str, dict[str, float]]:
    """Per-preset, per-phase IoU of ``model`` on one fresh synthetic volume per preset."""
    from ._loss import iou_from_confusion
    from ._synthetic import TRAIN_PRESETS, evaluate, make_pair

    out: dict[str, dict[str, float]] = {}
    for i, name in enumerate(presets or TRAIN_PRESETS):
        img, lab = make_pair(shape, electrode={"seed": seed + i}, preset=name, physics={}, seed=seed + i, normalization=model.normalization)
        iou = iou_from_confusion(evaluate(model, img, lab, n_classes=len(model.phases)))
        out[name] = {p: round(float(v), 4) for p, v in zip(model.phases, iou)}
    return out


def _two_lines(name: str) -> str:
    """A preset's name on two lines, broken at the hyphen nearest its middle (nano-ct / phase)."""
    cuts = [i for i, c in enumerate(name) if c == "-"]
    if not cuts:
        return name
    i = min(cuts, key=lambda k: abs(k - len(name) / 2))
    return f"{name[:i]}\n{name[i + 1:]}"


def plot_history(history: list[dict[str, Any]], phases: list[str], path: str, *, title: str = "", test: dict | None = None,
                 stage_starts: list[float] = ()) -> None:
    """Loss and validation IoU per epoch (and per-preset test IoU bars) as a PNG; dotted lines
    where a new training stage (fine-tuning) starts."""
    import matplotlib.ticker

    from ..report._figure import finish, phase_marker, phase_rgb, pyplot

    plt = pyplot(path)  # Agg only where no backend was chosen yet (a notebook's inline backend stays)

    ep = [h["epoch"] for h in history]
    ncol = 3 if test else 2
    fig, axes = plt.subplots(1, ncol, figsize=(4.2 * ncol, 3.6), constrained_layout=True,
                             gridspec_kw={"wspace": 0.12})  # the learning-rate axis label stays clear of the next panel
    axes[0].plot(ep, [h["loss"] for h in history], "k.-")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training loss (soft Dice + CE)")
    axes[0].set_yscale("log")
    ax2 = axes[0].twinx()
    ax2.plot(ep, [h["lr"] for h in history], color="0.6", lw=1, ls="--", marker="." if len(ep) < 3 else None)
    ax2.set_yscale("log")
    ax2.set_ylabel("learning rate", color="0.5")
    for i, p in enumerate(phases):
        c = phase_rgb(p, i)
        v = [np.nan if (h.get("val_iou") or {}).get(p) is None else h["val_iou"][p] for h in history]
        axes[1].plot(ep, v, "-", marker=phase_marker(p, i), ms=4, color=c, label=p)  # told apart without colour too
    axes[1].set_xlabel("epoch")
    validated = any((h.get("val_iou") or {}).get(p) is not None for h in history for p in phases)
    for ax in axes[:2]:
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if len(ep) and min(ep) == max(ep):  # one epoch: an axis around it, not 0.945 ... 1.05
            ax.set_xlim(min(ep) - 1, max(ep) + 1)
        elif len(ep):  # the epochs, also where no IoU was drawn (was -0.05 ... 0.05 in ticks running together)
            ax.set_xlim(*axes[0].get_xlim())
    axes[1].set_ylabel("validation IoU")
    axes[1].set_ylim(0, 1)
    axes[1].grid(alpha=0.3)
    if validated:
        axes[1].legend(loc="best")  # where it covers the fewest points (a low cbd curve sat under "lower right")
    else:  # trained without validation data: say so, not a legend of curves that are not there
        axes[1].text(0.5, 0.5, "no validation data\n(e.g. --val-fraction 0)", ha="center", va="center",
                     transform=axes[1].transAxes, color="0.3")
    for x in stage_starts:
        for ax in axes[:2]:
            ax.axvline(x, color="0.3", ls=":", lw=1)
        axes[1].text(x, 0.02, " stage 2" if len(stage_starts) == 1 else " next stage", fontsize=7, color="0.3")
    if test:
        names = list(test)
        w = 0.8 / len(phases)
        for i, p in enumerate(phases):
            c = phase_rgb(p, i)
            axes[2].bar(np.arange(len(names)) + (i - (len(phases) - 1) / 2) * w, [test[n][p] for n in names], w, color=c, label=p)
        axes[2].set_xticks(np.arange(len(names)), [_two_lines(n) for n in names], fontsize=7)
        axes[2].set_ylim(0, 1)
        axes[2].set_ylabel("IoU on unseen synthetic volumes")
        axes[2].grid(axis="y", alpha=0.3)
    finish(fig, path, title=title or None, dpi=110, fontsize=9)  # whole or not at all


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("train_report", nargs="?", default=None,
                    help="JSON written by `bigseg train --report` (default: the provenance stored in the model)")
    ap.add_argument("--json", required=True)
    ap.add_argument("--png", required=True)
    ap.add_argument("--test-seed", type=int, default=20_000)
    args = ap.parse_args(argv)
    import torch

    from ..models import load

    torch.set_num_threads(1)
    model = load(args.model)
    if args.train_report:
        with open(args.train_report) as fh:
            prov = json.load(fh)["provenance"]
    else:
        prov = model.provenance
    t0 = time.perf_counter()
    test = evaluate_presets(model, seed=args.test_seed)
    stages = lineage(prov)
    history, starts = _joined_history(stages)
    duration = sum(st.get("duration_s") or 0 for st in stages)
    steps = sum(st.get("steps") or 0 for st in stages)
    out = {
        "model": "bigseg/models/weights/default.pt",
        "checkpoint_key": model.checkpoint_key(),
        "arch": model.arch, "arch_kwargs": model.arch_kwargs, "patch": list(model.patch), "phases": model.phases,
        "normalization": model.normalization,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "trained_with": "scripts/train_default.sh",
        "hardware": prov.get("hardware"), "duration_s": round(duration, 2), "steps": steps,
        "epochs": sum(st.get("epochs") or 0 for st in stages),
        "stages": [{**{k: st.get(k) for k in _STAGE_KEYS}, "data": st.get("data")} for st in stages],
        "validation_iou_by_preset": (prov.get("scores") or {}).get("validation_iou_by_preset"),
        "test_iou_by_preset": test,
        "test_volumes": {"shape": [32, 128, 128], "seeds": f"{args.test_seed}+i (electrode and noise), preset physics"},
        "test_eval_s": round(time.perf_counter() - t0, 1),
        "history": history,
    }
    write_text(args.json, json.dumps(out, indent=1))
    plot_history(history, model.phases, args.png, test=test, stage_starts=starts,
                 title=f"bigseg default model: {model.arch} {model.arch_kwargs}, {steps} steps in {duration / 60:.0f} min"
                       f"{f' ({len(stages)} stages)' if len(stages) > 1 else ''} "
                       f"({(prov.get('hardware') or '').split(',')[0]}), synthetic electrodes")
    print(json.dumps(test, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
