"""Is the network the limit? Stronger specialist ceilings than bench_model_quality's.

bench_model_quality.py's specialist ceiling is the default model fine-tuned for 360 steps on
dense exact labels of another electrode imaged with the test volume's exact physics. A critic
may ask whether a longer run or a bigger network would do much better. Here, on the same
unseen test volumes (``bench_model_quality.unseen_volumes``), two stronger specialists are
trained on the dense exact labels of a larger electrode (96 x 160 x 160, seed 70 000 + i)
imaged with exactly the test physics:

* ``long``: the default 3D U-Net (16, 32, 64 channels, 0.32 M parameters) fine-tuned for
  ``STEPS`` steps (default 1500, about 4x the quality benchmark's specialist),
* ``wide``: a 3D U-Net with 32, 64, 128 channels (1.28 M parameters, 4x the compute) trained
  from scratch for the same number of steps.

Each is scored like the quality benchmark (per-phase IoU, volume-fraction error, and the margin
of its pore/CBD operating-point curve over the random forest on the sparse labels). If both
land together, far below the targets of issue #6, the imaging, not the network's size or
training length, sets the limit.

Run: ``PRESETS=nano-ct-phase,lab-micro-ct THREADS=2 nice .venv/bin/python benchmarks/bench_model_capacity.py``
(about 14 min per preset on a shared 2-core CPU). Writes ``benchmarks/results/model_capacity.json``
(with ``PRESETS``, ``STEPS``, ``BATCH``, ``WIDE``, ``DEVICE``, ``AMP`` or ``SHAPE`` (the test volumes',
as in bench_model_quality.py, default 48,128,128) set to another value than the default and no ``NAME``:
``results/model_capacity.local.json``, git-ignored).

On a GPU, the long run issue #6 asks for: ``DEVICE=cuda STEPS=20000 BATCH=16 WIDE=32,64,128
PRESETS=nano-ct-phase NAME=model_capacity_cuda python benchmarks/bench_model_capacity.py``
(``DEVICE`` trains there, ``BATCH`` windows a step, ``WIDE`` the wide network's channels,
``NAME`` the results file's name).
"""

from __future__ import annotations

import os
import platform
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_model_quality as quality  # noqa: E402  (the test volumes and scoring helpers)
from _util import no_options, save  # noqa: E402

TRAIN_SHAPE = (96, 160, 160)
WIDE_CHANNELS = (32, 64, 128)
#: the environment variables that configure this benchmark, with their defaults (another value, without ``NAME``:
#: not the reference run)
ENV = {"PRESETS": "nano-ct-phase,lab-micro-ct", "STEPS": "1500", "BATCH": "4", "WIDE": ",".join(map(str, WIDE_CHANNELS)),
       "DEVICE": "", "AMP": "bf16", "SHAPE": quality.ENV["SHAPE"]}  # SHAPE: the test volumes' (bench_model_quality's)


def main() -> int:
    import dask
    import torch

    import bigseg
    import bigseg.infer
    from bigseg import models, synth

    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    presets = os.environ.get("PRESETS", ENV["PRESETS"]).split(",")
    steps = int(os.environ.get("STEPS", ENV["STEPS"]))
    device = os.environ.get("DEVICE") or None
    batch = int(os.environ.get("BATCH", ENV["BATCH"]))
    wide = tuple(int(c) for c in os.environ.get("WIDE", ENV["WIDE"]).split(","))
    epochs = 10
    default = models.load("default")
    phases = default.phases
    recipes = {
        "long": dict(init=default, lr=3e-4),
        "wide": dict(arch="unet3d", arch_kwargs={"channels": wide}, patch=(32, 32, 32), lr=2e-3),
    }
    rows = []
    t_all = time.perf_counter()
    with dask.config.set(scheduler="synchronous"):
        for i, preset, lab, phys, raw, sparse in quality.unseen_volumes():
            if preset not in presets:
                continue
            tr_lab = synth.electrode(TRAIN_SHAPE, seed=70_000 + i, chunks=TRAIN_SHAPE).values
            tr_raw = synth.xct(tr_lab, seed=70_000 + i, preset=preset, **phys).values
            rf_pred, _ = quality.random_forest(raw, sparse, seed=i)
            rf = quality.iou(lab, rf_pred, phases)
            row = {"preset": preset, "default": quality.iou(lab, bigseg.infer.segment(raw, default)["labels"].values, phases),
                   "random_forest": rf}
            for name, kw in recipes.items():
                t = time.perf_counter()
                m = bigseg.train(tr_raw, tr_lab, epochs=epochs, steps_per_epoch=steps // epochs, lr_decay=0.8, batch_size=batch,
                                 amp=os.environ.get("AMP", ENV["AMP"]), progress=False, seed=1, patience=None, device=device, **kw)
                dt = time.perf_counter() - t
                ds = bigseg.infer.segment(raw, m, probabilities=True)  # on the GPU where there is one (train returns it on the CPU)
                pred = ds["labels"].values
                front = quality.tradeoff(lab, ds["probabilities"].values, phases)
                row[name] = {"iou": quality.iou(lab, pred, phases), "fraction_error": quality.fraction_error(lab, pred, phases),
                             "curve_margin_over_random_forest": quality.margin_over(front, rf),
                             "parameters": int(sum(p.numel() for p in m.parameters())), "steps": m.provenance.get("steps"),
                             "train_s": round(dt, 1)}
                print(f"{preset:22s} {name:5s} {row[name]}", flush=True)
            print(f"{preset:22s} default {row['default']}  RF {rf}", flush=True)
            rows.append(row)
    out = {"benchmark": "bench_model_capacity", "train_shape": list(TRAIN_SHAPE), "wide_channels": list(wide),
           "steps": steps, "batch_size": batch, "device": str(device or "cpu"), "targets": quality.TARGETS, "per_preset": rows, "duration_s": round(time.perf_counter() - t_all, 1),
           "machine": (f"{platform.machine()}, {os.cpu_count()} CPUs" + (f", {torch.cuda.get_device_name()}" if device and
                       device.startswith("cuda") else " shared with other jobs (timings pessimistic)")),
           "torch_threads": torch.get_num_threads(), "python": sys.version.split()[0]}
    # NAME names a run of its own (the GPU run below): recorded as asked
    print(f"wrote {save(os.environ.get('NAME', 'model_capacity'), out, env=None if 'NAME' in os.environ else ENV)}")
    return 0


if __name__ == "__main__":
    no_options(__doc__)
    raise SystemExit(main())
