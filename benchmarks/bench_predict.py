"""bigseg ``predict`` vs MONAI ``sliding_window_inference``: throughput and peak RSS.

    flock /tmp/bigseg-bench.lock nice .venv/bin/python benchmarks/bench_predict.py [--sizes 256,512]

Same network and weights for every case: MONAI ``UNet(spatial_dims=3, in_channels=1,
out_channels=3, channels=(16, 32, 64, 128), strides=(2, 2, 2))`` (seed 0), traced to TorchScript
once and loaded by every case with ``torch.jit.load`` (bit-identical outputs to the eager
module; the bigseg process then does not import MONAI, ~190 MiB of RSS that a bigseg user would
not pay either, while the MONAI case imports it for ``sliding_window_inference``), roi 64³,
overlap 0.5, gaussian blending, 4 windows per forward pass. The input is an OME-Zarr float32
volume on disk (chunks 128³); every case reads it and ends with uint8 labels:

* ``monai``: read the whole volume into memory, ``sliding_window_inference`` (softmax
  predictor), argmax — MONAI's way (whole-volume input, output and weight map in RAM).
* ``bigseg``: ``predict`` on the lazy volume + ``write_prediction`` (labels into the OME-Zarr),
  float32 throughout (same numbers as MONAI to 1e-5; its labels are checked against MONAI's
  after each run: at least 99.99 % of the voxels equal, asserted).
* ``bigseg-bf16``: the same with ``autocast="bf16"`` on the CPU (AVX512-BF16).
* ``monai-bf16`` (``--monai-bf16``): MONAI under the same autocast, for a like-for-like view.

Each case runs in its own subprocess, which reports its own peak RSS (``VmHWM``, see
``_util.PEAK_RSS``; bigseg runs on the threaded scheduler, in that process). With
``--repeat N`` every size runs its cases N times, interleaved (monai, bigseg, ..., monai,
bigseg, ...), and the table shows each case's median seconds and peak RSS, with the ratio of
each repetition's pair beside it: on a shared machine a single pair moves by ±10 %.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).parent))
from _util import run_case, save  # noqa: E402

COMMON = """
import json, time, os
import numpy as np, torch
net = torch.jit.load({weights!r}).eval()  # the MONAI UNet, traced: same weights, same outputs
"""

MONAI_CASE = COMMON + """
import zarr
from monai.inferers import sliding_window_inference
amp = {amp!r}
t0 = time.perf_counter()
x = zarr.open_array({src!r} + "/0", mode="r")[...]
with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
    p = sliding_window_inference(torch.from_numpy(x)[None, None], (64, 64, 64), 4,
                                 lambda t: torch.softmax(net(t).float(), 1), overlap=0.5, mode="gaussian")
labels = np.empty(x.shape, np.uint8)
for z0 in range(0, x.shape[0], 16):  # argmax in slabs: no whole-volume int64 temporary
    labels[z0:z0 + 16] = p[0, :, z0:z0 + 16].argmax(0).to(torch.uint8).numpy()
dt = time.perf_counter() - t0
np.save({labels!r}, labels)  # for the check of bigseg's labels (after the timing)
print(json.dumps({{"seconds": dt, "mvox_s": x.size / dt / 1e6, "n": int(labels.size)}}))
"""

BIGSEG_CASE = COMMON + """
import bigseg
from bigseg.infer import predict, write_prediction, worker_stats
t0 = time.perf_counter()
vol = bigseg.open_volume({src!r})
ds = predict(vol, net, patch=(64, 64, 64), overlap=0.5, blend="gaussian", batch_size=4, autocast={autocast!r})
write_prediction(ds, {src!r}, name="bench", overwrite=True, progress=False)
dt = time.perf_counter() - t0
print(json.dumps({{"seconds": dt, "mvox_s": vol.size / dt / 1e6, "n_patches": ds.attrs["n_patches"],
                   "evaluated": worker_stats()["patches"]}}))
"""


def make_input(path: Path, n: int, chunks: int) -> None:
    """A float32 OME-Zarr volume with grains and noise, written block by block."""
    if (path / "zarr.json").exists():
        return
    import dask.array as da
    import numpy as np

    import bigseg

    def block(block_info=None):
        (z0, z1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        z, y, x = np.meshgrid(np.arange(z0, z1), np.arange(y0, y1), np.arange(x0, x1), indexing="ij", sparse=True)
        field = np.sin(z / 7.0) + np.sin(y / 5.0 + 1) * np.cos(x / 6.0)
        rng = np.random.default_rng(z0 * 7919 + y0 * 104729 + x0)
        return (field + 0.3 * rng.normal(size=field.shape)).astype(np.float32)

    arr = da.map_blocks(block, chunks=((chunks,) * (n // chunks),) * 3, dtype=np.float32)
    bigseg.save_volume(arr, path, overwrite=True, progress=False)


def agreement(src: Path, monai_labels: Path) -> float:
    """Share of voxels where the labels ``write_prediction`` wrote equal MONAI's (float32 both)."""
    import numpy as np

    import bigseg

    return float(np.mean(bigseg.open_volume(src, label="bench").values == np.load(monai_labels)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--chunks", type=int, default=128)
    ap.add_argument("--cases", default="monai,bigseg,bigseg-bf16")
    ap.add_argument("--monai-bf16", action="store_true")
    ap.add_argument("--workdir", default="/tmp/bigseg-bench-predict")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--repeat", type=int, default=1, help="runs of every case, interleaved; medians reported")
    ap.add_argument("--merge", action="store_true", help="replace matching rows of results/predict.json, keep the others")
    args = ap.parse_args()
    import torch
    from monai.networks.nets import UNet

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    weights = work / "unet.ts"
    torch.manual_seed(0)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=(16, 32, 64, 128), strides=(2, 2, 2)).eval()
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(net, torch.zeros(4, 1, 64, 64, 64)), weights)
    cases = args.cases.split(",") + (["monai-bf16"] if args.monai_bf16 else [])
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1, got {args.repeat}")
    rows = []
    for n in map(int, args.sizes.split(",")):
        src = work / f"vol{n}.ome.zarr"
        make_input(src, n, args.chunks)
        runs: dict[str, list[dict]] = {case: [] for case in cases}
        monai_labels = work / f"monai_labels{n}.npy"
        monai_labels.unlink(missing_ok=True)
        for rep in range(args.repeat):
            for case in cases:
                if case.startswith("monai"):
                    code = MONAI_CASE.format(weights=str(weights), src=str(src), amp=case.endswith("bf16"),
                                             labels=str(monai_labels if case == "monai" else work / "monai_bf16_labels.npy"))
                else:
                    code = BIGSEG_CASE.format(weights=str(weights), src=str(src), autocast="bf16" if case.endswith("bf16") else None)
                print(f"{n}^3 {case} ({rep + 1}/{args.repeat}) ...", file=sys.stderr, flush=True)
                r = run_case(code, env={"PYTHONWARNINGS": "ignore"}, timeout=args.timeout)
                if case == "bigseg" and monai_labels.exists():  # the same network in float32: the same labels
                    r["labels_equal_to_monai"] = agreement(src, monai_labels)
                    assert r["labels_equal_to_monai"] > 0.9999, f"labels differ from MONAI's: {r['labels_equal_to_monai']}"
                runs[case].append(r)
                print(f"  {r['mvox_s']:.2f} Mvox/s, {r['seconds']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
        for case, rs in runs.items():
            row = {**rs[0], "size": n, "case": case, "seconds": median(r["seconds"] for r in rs),
                   "peak_rss_mib": median(r["peak_rss_mib"] for r in rs)}
            row["mvox_s"] = n**3 / row["seconds"] / 1e6
            if args.repeat > 1:
                row["runs"] = [{"seconds": round(r["seconds"], 2), "peak_rss_mib": r["peak_rss_mib"]} for r in rs]
                if "monai" in runs and case != "monai":
                    row["vs_monai_runs"] = [round(m["seconds"] / r["seconds"], 2) for m, r in zip(runs["monai"], rs)]
            rows.append(row)
        shutil.rmtree(src / "labels", ignore_errors=True)
        for f in (monai_labels, work / "monai_bf16_labels.npy"):
            f.unlink(missing_ok=True)

    if args.merge and (Path(__file__).parent / "results" / "predict.json").exists():
        old = json.loads((Path(__file__).parent / "results" / "predict.json").read_text()).get("rows", [])
        fresh = {(r["size"], r["case"]) for r in rows}
        rows = sorted([r for r in old if (r["size"], r["case"]) not in fresh] + rows, key=lambda r: (r["size"], r["case"]))
    print(f"\n{'size':>5} {'case':<12} {'Mvox/s':>8} {'seconds':>8} {'peak RSS MiB':>13} {'vs MONAI':>9} {'RSS/MONAI':>10}  each run vs MONAI")
    for r in rows:
        ref = next((q for q in rows if q["size"] == r["size"] and q["case"] == "monai"), None)
        speed = f"{r['mvox_s'] / ref['mvox_s']:.2f}x" if ref else "-"
        mem = f"{r['peak_rss_mib'] / ref['peak_rss_mib']:.2f}" if ref else "-"
        each = ", ".join(f"{v:.2f}" for v in r.get("vs_monai_runs", []))
        print(f"{r['size']:>5} {r['case']:<12} {r['mvox_s']:>8.2f} {r['seconds']:>8.1f} {r['peak_rss_mib']:>13.0f} {speed:>9} {mem:>10}  {each}")
    path = save("predict", {
        "what": "bigseg predict + write_prediction vs MONAI sliding_window_inference; UNet(16,32,64,128), roi 64^3, "
                "overlap 0.5, gaussian, batch 4, float32 input OME-Zarr with 128^3 chunks",
        "note": "2-core machine shared with other agents while measured: absolute figures are pessimistic",
        "torch_threads": torch.get_num_threads(),
        "repeat": args.repeat,
        "rows": rows,
    })
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
