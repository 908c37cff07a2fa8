"""Throughput and peak memory of synthetic electrode + tomogram generation into OME-Zarr.

    python benchmarks/bench_synth.py [--sizes 256,512] [--big] [--chunks 128] [--probes 64,128,256]
                                     [--workdir DIR]

Cases (each in a fresh interpreter; the child reports its own peak RSS from
``VmHWM``, which covers all its threads):

* ``kernel``: one 128**3 block of labels rendered on one core (target >= 5 Mvox/s);
* ``labels``: ``electrode(n**3)`` written block by block to OME-Zarr;
* ``synth``: what ``bigseg synth`` does: the tomogram (nano-ct-phase) and its labels, both
  written block by block (labels are generated twice: once under the tomogram, once written);
* peer ``in-memory``: the same labels + tomogram computed as one whole-volume block in NumPy
  (what a non-blocked generator does), to show what the block-wise write saves; the ``synth``
  case's image and labels must equal it, voxel for voxel (asserted).
* ``block_count_probe``: the tomogram of ``--probes`` sizes in 16**3 blocks (as many blocks as
  256**3 .. 1024**3 in 128**3 chunks), with the generated labels' own halo and with a halo
  exchange between blocks (~3 min for the default sizes; ``--probes ""`` skips it: a quick
  ``--sizes 32 --inmemory 32 --probes ""`` check takes seconds).

``--big`` adds 1024**3 (minutes on a 2-core machine). Peak RSS should stay roughly flat as the
volume grows (only the particle list grows, ~0.3 KiB per particle).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import PEAK_RSS, save  # noqa: E402

PRELUDE = """
import json, time
import numpy as np
"""

KERNEL = PRELUDE + """
from bigseg.synth._particles import build_model, render_labels
m = build_model((512, 512, 512), fractions=(0.35, 0.15, 0.5), radius=(8, 2), seed=0)
render_labels(m, (0, 0, 0), (16, 16, 16))
best = 1e9
for _ in range(3):
    t0 = time.perf_counter()
    render_labels(m, (192, 192, 192), (128, 128, 128))
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"seconds": best, "mvox_s": 128**3 / best / 1e6,
                  "rss_mib": peak_rss_mib()}))
"""

LABELS = PRELUDE + """
from bigseg.io import save_volume
from bigseg.synth import electrode
from bigseg.synth._particles import build_model
build_model((64, 64, 64), fractions=(0.35, 0.15, 0.5), radius=(8, 2), seed=0)  # compile
t0 = time.perf_counter()
lab = electrode({n}, seed=0, chunks={chunks})
t1 = time.perf_counter()
save_volume(lab, {dst!r}, progress=False)
dt = time.perf_counter() - t0
print(json.dumps({{"seconds": dt, "model_s": t1 - t0, "mvox_s": {n}**3 / dt / 1e6,
                  "n_particles": json.loads(lab.attrs["synth"])["n_particles"],
                  "rss_mib": peak_rss_mib()}}))
"""

SYNTH = PRELUDE + """
from bigseg.io import save_labels, save_volume
from bigseg.synth import electrode, xct
from bigseg.synth._particles import build_model
build_model((64, 64, 64), fractions=(0.35, 0.15, 0.5), radius=(8, 2), seed=0)
xct(np.zeros((40, 40, 40), np.uint8)).values  # compile
t0 = time.perf_counter()
lab = electrode({n}, seed=0, chunks={chunks})
save_volume(xct(lab, seed=0), {dst!r}, progress=False)
save_labels(lab, {dst!r}, progress=False)
dt = time.perf_counter() - t0
print(json.dumps({{"seconds": dt, "mvox_s": {n}**3 / dt / 1e6,
                  "rss_mib": peak_rss_mib()}}))
"""

INMEM = PRELUDE + """
from bigseg.kernels.xct import halo, xct_block
from bigseg.synth._particles import build_model, render_labels
from bigseg.synth._xct import _tables, physics
n = {n}
build_model((64, 64, 64), fractions=(0.35, 0.15, 0.5), radius=(8, 2), seed=0)
t0 = time.perf_counter()
m = build_model((n, n, n), fractions=(0.35, 0.15, 0.5), radius=(8, 2), seed=0)
lab = render_labels(m, (0, 0, 0), (n, n, n))
p = physics("nano-ct-phase")
h = halo(p)
drift, rings, step, centre = _tables(p, lab.shape, h, 0)
img = xct_block(np.pad(lab, h, mode="symmetric"), np.array([-h] * 3), (h, h, h), p, seed=0, drift=drift,
                drift_start=-h, rings=rings, ring_step=step, centre=centre)
np.save({dst!r} + "-img.npy", img)
np.save({dst!r} + "-lab.npy", lab)
dt = time.perf_counter() - t0
print(json.dumps({{"seconds": dt, "mvox_s": n**3 / dt / 1e6,
                  "rss_mib": peak_rss_mib()}}))
"""

# Small blocks make many blocks cheaply: the same number of blocks as 256^3..1024^3 with 128^3
# chunks. ``generic`` defeats the generated-labels path (halo exchange between blocks).
PROBE = PRELUDE + """
from bigseg.io import save_volume
from bigseg.synth import electrode, xct
n, c, generic = {n}, {c}, {generic}
lab = electrode(n, seed=0, chunks=c)
arr = lab.copy(data=lab.data.map_blocks(lambda x: x, dtype=np.uint8)) if generic else lab
t0 = time.perf_counter()
save_volume(xct(arr, seed=0), {dst!r}, progress=False, overwrite=True)
dt = time.perf_counter() - t0
print(json.dumps({{"size": n, "chunks": c, "blocks": (n // c) ** 3, "halo_exchange": generic, "seconds": dt,
                  "mvox_s": n**3 / dt / 1e6, "rss_mib": peak_rss_mib()}}))
"""


def child(code: str) -> dict:
    import json
    import subprocess
    import time

    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK_RSS + code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = round(time.perf_counter() - t0, 2)
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()}


def same_as_in_memory(store: Path, mem: Path) -> bool:
    """The block-wise tomogram and labels equal the whole-volume peer's, voxel for voxel (asserted)."""
    import numpy as np

    from bigseg.io import open_volume

    for what, written in (("img", open_volume(store)), ("lab", open_volume(store, label="segmentation"))):
        assert np.array_equal(written.values, np.load(f"{mem}-{what}.npy")), f"{store.name}: {what} differs from the in-memory peer"
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,512")
    ap.add_argument("--big", action="store_true", help="add 1024^3")
    ap.add_argument("--chunks", type=int, default=128)
    ap.add_argument("--inmemory", default="256", help="sizes for the in-memory peer (default 256)")
    ap.add_argument("--probes", default="64,128,256",
                    help="sizes of the block-count probe in 16^3 blocks (default 64,128,256; '' for none)")
    ap.add_argument("--workdir", default="/tmp/bigseg-bench-synth")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] + ([1024] if args.big else [])
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    kernel = child(KERNEL)
    print(f"labels kernel, one 128^3 block on one core: {kernel['mvox_s']:.2f} Mvox/s", flush=True)
    rows = []
    for n in sizes:
        r = {"size": n}
        r["labels"] = child(LABELS.format(n=n, chunks=args.chunks, dst=str(work / f"lab{n}.ome.zarr")))
        shutil.rmtree(work / f"lab{n}.ome.zarr", ignore_errors=True)
        r["synth"] = child(SYNTH.format(n=n, chunks=args.chunks, dst=str(work / f"syn{n}.ome.zarr")))
        if str(n) in args.inmemory.split(","):
            r["in_memory"] = child(INMEM.format(n=n, dst=str(work / f"mem{n}")))
            r["equal_to_in_memory"] = same_as_in_memory(work / f"syn{n}.ome.zarr", work / f"mem{n}")
        shutil.rmtree(work / f"syn{n}.ome.zarr", ignore_errors=True)
        for f in work.glob("mem*"):
            f.unlink()
        rows.append(r)
        print(f"{n}^3 done: labels {r['labels']['mvox_s']:.2f} Mvox/s, synth {r['synth']['mvox_s']:.2f} Mvox/s",
              file=sys.stderr, flush=True)

    print()
    print(f"{'size':>6} | {'labels Mvox/s':>13} {'RSS MiB':>8} | {'image+labels Mvox/s':>19} {'RSS MiB':>8} | "
          f"{'in-memory Mvox/s':>16} {'RSS MiB':>8} | particles")
    for r in rows:
        mem = r.get("in_memory")
        memtxt = f"{mem['mvox_s']:>16.2f} {mem['rss_mib']:>8.0f}" if mem else f"{'-':>16} {'-':>8}"
        print(f"{r['size']:>5}³ | {r['labels']['mvox_s']:>13.2f} {r['labels']['rss_mib']:>8.0f} | "
              f"{r['synth']['mvox_s']:>19.2f} {r['synth']['rss_mib']:>8.0f} | {memtxt} | {r['labels']['n_particles']}")
    probes = []
    probe_sizes = [int(v) for v in args.probes.split(",") if v.strip()]
    for generic in (False, True):
        for n in probe_sizes:
            probes.append(child(PROBE.format(n=n, c=16, generic=generic, dst=str(work / f"probe{n}.ome.zarr"))))
            shutil.rmtree(work / f"probe{n}.ome.zarr", ignore_errors=True)
    if probes:
        print(f"\ntomogram with 16^3 blocks ({probes[0]['blocks']} -> {probes[len(probe_sizes) - 1]['blocks']} blocks): "
              "peak RSS MiB")
        print(f"{'size':>6} | {'blocks':>6} | {'own halo (default)':>18} | {'halo exchange':>13}")
    for a, b in zip(probes[:len(probe_sizes)], probes[len(probe_sizes):]):
        print(f"{a['size']:>5}³ | {a['blocks']:>6} | {a['rss_mib']:>18.0f} | {b['rss_mib']:>13.0f}")
    path = save("synth", {"chunks": args.chunks, "kernel_128_one_core": kernel, "cases": rows,
                          "block_count_probe": probes,
                          "note": "2-core machine shared with other agents: figures are pessimistic; Mvox/s counts "
                                  "voxels of the volume per wall second (the image+labels case writes both)"})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
