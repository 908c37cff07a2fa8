"""Training report of a model: curves (PNG) and per-preset, per-phase IoU (JSON).

``python -m bigseg.train._report MODEL.pt TRAIN_REPORT.json --json OUT.json --png OUT.png``
(used by ``scripts/train_default.sh``). Test volumes are synthetic electrodes never seen in
training (electrode and noise seeds ``test_seed + i``, the presets' own physics).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

__all__ = ["evaluate_presets", "plot_history", "main"]


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


def plot_history(history: list[dict[str, Any]], phases: list[str], path: str, *, title: str = "", test: dict | None = None) -> None:
    """Loss and validation IoU per epoch (and per-preset test IoU bars) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import phase_colour

    ep = [h["epoch"] for h in history]
    ncol = 3 if test else 2
    fig, axes = plt.subplots(1, ncol, figsize=(4.2 * ncol, 3.6), constrained_layout=True)
    axes[0].plot(ep, [h["loss"] for h in history], "k.-")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training loss (soft Dice + CE)")
    axes[0].set_yscale("log")
    ax2 = axes[0].twinx()
    ax2.plot(ep, [h["lr"] for h in history], color="0.6", lw=1, ls="--")
    ax2.set_yscale("log")
    ax2.set_ylabel("learning rate", color="0.5")
    for i, p in enumerate(phases):
        c = np.array(phase_colour(p, i)[:3]) / 255
        v = [np.nan if (h.get("val_iou") or {}).get(p) is None else h["val_iou"][p] for h in history]
        axes[1].plot(ep, v, ".-", color=c, label=p)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("validation IoU")
    axes[1].set_ylim(0, 1)
    axes[1].grid(alpha=0.3)
    axes[1].legend(loc="lower right")
    if test:
        names = list(test)
        w = 0.8 / len(phases)
        for i, p in enumerate(phases):
            c = np.array(phase_colour(p, i)[:3]) / 255
            axes[2].bar(np.arange(len(names)) + (i - (len(phases) - 1) / 2) * w, [test[n][p] for n in names], w, color=c, label=p)
        axes[2].set_xticks(np.arange(len(names)), [n.replace("-", "-\n", 1) for n in names], fontsize=7)
        axes[2].set_ylim(0, 1)
        axes[2].set_ylabel("IoU on unseen synthetic volumes")
        axes[2].grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("train_report", help="JSON written by `bigseg train --report`")
    ap.add_argument("--json", required=True)
    ap.add_argument("--png", required=True)
    ap.add_argument("--test-seed", type=int, default=20_000)
    args = ap.parse_args(argv)
    import torch

    from ..models import load

    torch.set_num_threads(1)
    model = load(args.model)
    with open(args.train_report) as fh:
        rep = json.load(fh)
    t0 = time.perf_counter()
    test = evaluate_presets(model, seed=args.test_seed)
    prov = rep["provenance"]
    out = {
        "model": "bigseg/models/weights/default.pt",
        "checkpoint_key": model.checkpoint_key(),
        "arch": model.arch, "arch_kwargs": model.arch_kwargs, "patch": list(model.patch), "phases": model.phases,
        "normalization": model.normalization,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "trained_with": "scripts/train_default.sh",
        "hardware": prov.get("hardware"), "duration_s": prov.get("duration_s"), "steps": prov.get("steps"),
        "epochs": prov.get("epochs"), "best_epoch": prov.get("best_epoch"), "timed_out": prov.get("timed_out"),
        "seed": prov.get("seed"), "lr": prov.get("lr"), "lr_decay": prov.get("lr_decay"), "batch_size": prov.get("batch_size"),
        "amp": prov.get("amp"), "data": prov.get("data"),
        "validation_iou_by_preset": (prov.get("scores") or {}).get("validation_iou_by_preset"),
        "test_iou_by_preset": test,
        "test_volumes": {"shape": [32, 128, 128], "seeds": f"{args.test_seed}+i (electrode and noise), preset physics"},
        "test_eval_s": round(time.perf_counter() - t0, 1),
        "history": prov.get("history"),
    }
    with open(args.json, "w") as fh:
        json.dump(out, fh, indent=1)
    minutes = (prov.get("duration_s") or 0) / 60
    plot_history(prov.get("history") or [], model.phases, args.png, test=test,
                 title=f"bigseg default model: {model.arch} {model.arch_kwargs}, {prov.get('steps')} steps in {minutes:.0f} min "
                       f"({(prov.get('hardware') or '').split(',')[0]}), synthetic electrodes")
    print(json.dumps(test, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
