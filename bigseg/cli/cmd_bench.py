"""``bigseg bench``: throughput of each stage on a generated electrode, on this machine or a cluster."""

from __future__ import annotations

import argparse

from ._common import add_cluster_args, add_progress_args, cluster_from_args, json_text, output_file


def register(sub: argparse._SubParsersAction) -> None:
    from ..bench import STAGES

    p = sub.add_parser("bench", help="time each stage (Mvox/s) on a generated electrode",
                       description="Generate a SIZE³ electrode and its simulated nano-CT, write it as OME-Zarr and time "
                                   "each stage reading from and writing to disk: write, filter (3³ median), segment "
                                   "(the model), measure (fractions, interfaces), particles. With --cluster the stages "
                                   "run on that cluster: watch its dashboard while it runs.")
    p.add_argument("--size", type=int, default=128, help="edge of the generated volume in voxels (default 128)")
    p.add_argument("--chunks", type=int, default=64, help="chunk edge in voxels (default 64)")
    p.add_argument("--model", default="default", help="model name or checkpoint path (default: the bundled model)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)} (default: all)")
    p.add_argument("--workdir", default=None, help="where the temporary volumes go (default: the system's temp)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="time the stages N times, each on a fresh copy, and give the median run's figures with "
                        "their spread, (max - min) / median (default 1)")
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="time the first run too (by default each stage first runs once, untimed, on a small volume, "
                        "so that compiling kernels and loading the model here and on the workers is not timed)")
    m = p.add_argument_group("segment stage")
    m.add_argument("--overlap", type=float, default=None, help="window overlap fraction in [0, 1) (default 0.5)")
    m.add_argument("--autocast", default=None, choices=["auto", "bf16", "fp16", "off"],
                   help="reduced precision for the model (default auto: bf16/fp16 on a GPU, float32 on the CPU)")
    m.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available)")
    m.add_argument("--batch-size", type=int, default=None, help="windows per forward pass (default 4 on the CPU, sized to free memory on a GPU)")
    add_progress_args(p)
    add_cluster_args(p)
    p.set_defaults(func=run, api_aliases={"name_or_path": "model"})  # models.load(name_or_path): --model


def run(args: argparse.Namespace) -> int:
    from ..bench import benchmark

    output_file(args.json, "--json", suffixes=(".json",), overwrite=args.overwrite)  # before any work
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    with cluster_from_args(args):  # killed (timeout, scancel: SIGTERM, see cli.main): its temporary volumes removed
        predict = {k: v for k, v in (("overlap", args.overlap), ("autocast", args.autocast), ("device", args.device),
                                     ("batch_size", args.batch_size)) if v is not None}
        res = benchmark(size=args.size, chunks=args.chunks, model=args.model, stages=stages, workdir=args.workdir,
                        predict=predict, progress=args.progress, warmup=args.warmup, repeat=args.repeat)
    env = res["environment"]
    opts = "".join(f", {k} {v}" for k, v in res["predict"].items())
    kind = f" ({env['cluster']})" if env.get("cluster") else ""
    where = (f"{env['scheduler']}{kind}, {env['workers']} workers, {env['threads']} threads" if "workers" in env
             else f"{env['scheduler']}, {env['cpus']} CPUs")
    print(f"bigseg bench: {res['size']}³ voxels in {res['chunks']}³ chunks, model {res['model']!r}{opts}; "
          f"{where}, GPU {env['cuda'] or 'none'}")
    many = res.get("repeat", 1) > 1  # the median of the runs, and how far they spread
    print(f"{'stage':<12}{'seconds':>10}{'Mvox/s':>10}{'10⁹ voxels':>14}" + (f"{'spread':>9}" if many else ""))
    for stage, r in res["stages"].items():
        print(f"{stage:<12}{r['seconds']:>10.3g}{r['mvox_per_s']:>10.3g}{_duration(1e3 / r['mvox_per_s']):>14}"
              + (f"{100 * r['spread']:>8.0f}%" if many else ""))
    if len(res["stages"]) > 1:
        total = sum(1e3 / r["mvox_per_s"] for r in res["stages"].values())
        print(f"{'all':<32}{_duration(total):>14}")
    print((f"(median of {res['repeat']} runs; spread: (max - min) / median)\n" if many else "")
          + "(10⁹ voxels: a 1000³ scan at the rates measured here, at this --size, on this machine and cluster"
          + (f"; write: a copy of the scan, simulated first in {res['simulate_s']:.3g} s, untimed)"
             if "simulate_s" in res else ")"))
    if res["peak_rss_mib"] is not None:
        print(f"peak memory of this process {res['peak_rss_mib']:.0f} MiB")
    if args.json:
        from ..runtime._files import write_text

        write_text(args.json, json_text(res, indent=1))  # whole or not at all
        print(f"wrote {args.json}")
    return 0


def _duration(seconds: float) -> str:
    """A planning figure: '42 s', '3.5 min', '2 h 05 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(int(round(seconds / 60)), 60)
    return f"{hours} h {minutes:02d} min"
