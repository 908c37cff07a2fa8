#!/usr/bin/env bash
# The GPU checks in one run, for a machine with an NVIDIA GPU whose python3 has torch and CuPy
# (e.g. the lent device: carry .whl from scripts/fetch_device_wheels.sh). Writes what it finds
# under $OUT (default /tmp/bigseg-gpu-check): env.txt, pytest_gpu.txt, bench_cuda.txt/.json,
# cluster.txt, filters_cuda.txt/.json, train.txt and train/ (checkpoint, report, curves). At most BUDGET seconds (default 420)
# in all: each step is time-boxed and the training gets what is left.
#
#   OUT=$OUT scripts/gpu_check.sh
#   PACK=$OUT/gpu_check.tgz OUT=/tmp/gc scripts/gpu_check.sh   # on the lent device: one file back
#   (PACK first: bash expands the assignments left to right, and the archive must lie outside OUT)
#
# 1. the GPU tests: CUDA inference against the CPU, CuPy blocks through normalize / the
#    classical segmenters / inference / the writer, training steps with AMP, CuPy filters;
# 2. the default model through a dask-cuda cluster (local-cuda) against one process;
# 3. bigseg bench on the GPU (256^3: write, filter, segment, measure, particles);
# 4. benchmarks/bench_filters.py --cupy (median and Gaussian on CuPy blocks against the CPU;
#    FILTERS=0 skips it);
# 5. the default model's recipe (scripts/train_default.sh) on the GPU for TRAIN_MINUTES per
#    stage (default 1; 0 skips it): steps per minute on this GPU, and that the recipe runs;
# 6. with CAPACITY_STEPS=N (e.g. 20000): benchmarks/bench_model_capacity.py on the GPU, the
#    long run of issue #6 (is the network or the imaging the limit?).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/bigseg-gpu-check}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-256}
WHEELS=${WHEELS:-.whl}
BUDGET=${BUDGET:-420}
TRAIN_MINUTES=${TRAIN_MINUTES:-1}
left() { echo $((BUDGET - SECONDS)); }
# boxed [-s SIGNAL] MAX COMMAND...: COMMAND under the smaller of MAX seconds and the time left
# (killed 20 s after the signal if it ignores it); skipped, said on stderr, when under 10 s are left
boxed() {
    local sig=TERM t cmd; [ "$1" = -s ] && { sig=$2; shift 2; }
    t=$(left); [ "$t" -gt "$1" ] && t=$1; shift
    cmd="$*"
    if [ "$t" -le 10 ]; then echo "skipped (out of time): ${cmd:0:120}" >&2; return 124; fi
    timeout -s "$sig" -k 20 "$t" "$@"
}
if [ -n "${PACK:-}" ]; then
    case "$(realpath -m "$PACK")/" in "$(realpath -m "$OUT")"/*)
        echo "gpu_check: PACK=$PACK lies inside OUT=$OUT (put PACK= before OUT= on the command line)" >&2; exit 2;;
    esac
fi
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then  # what the machine's Python lacks (dask, distributed, zarr, dask-cuda, ...)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
    "$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA')"
    "$PY" -c "import cupy; print('cupy', cupy.__version__)" 2>&1 | tail -1
    "$PY" -c "import bigseg, dask, zarr; print('bigseg', bigseg.__version__, 'dask', dask.__version__, 'zarr', zarr.__version__)"
} 2>&1 | tee "$OUT/env.txt"
# numba compiles bigseg's kernels on first use (a fresh machine has no cache): done here beside
# the tests, so that bench's timings do not include it (its 256^3 write stage ran past 60 s so)
"$PY" -c "from bigseg import measure, synth
lab = synth.electrode((40, 40, 40), seed=0, chunks=20); synth.xct(lab, seed=0).values
measure.summary(lab, progress=False); measure.particles(lab, progress=False)" > "$OUT/warmup.txt" 2>&1 &
warm=$!
# warnings of this machine's own package versions are not failures here
# (SIGINT at the time box: pytest still prints which test it was in and the failures so far).
# What had not passed on a GPU yet runs first. The first use of each CuPy filter compiles its
# kernel (NVRTC): on an H200 (2026-12-04) the Gaussian + unsharp test took over 60 s so.
boxed -s INT "${PYTEST_S:-170}" "$PY" -m pytest -v -p no:cacheprovider -rs --timeout "${TEST_TIMEOUT_S:-240}" --durations 8 \
    -W ignore::DeprecationWarning -W ignore::FutureWarning tests/infer/test_device.py \
    tests/infer/test_gpu.py tests/test_gpu_paths.py tests/filters/test_cupy.py 2>&1 | tee "$OUT/pytest_gpu.txt"
boxed "${CLUSTER_S:-90}" env DEVICE="$DEVICE" "$PY" scripts/gpu_cluster_check.py 2>&1 | grep -v "it/s" | tee "$OUT/cluster.txt"
wait "$warm" || echo "numba warm-up failed: see $OUT/warmup.txt"
boxed "${BENCH_S:-110}" "$PY" -c "from bigseg.cli import main; raise SystemExit(main(['bench', '--size', '$SIZE', '--device', '$DEVICE', '--json', '$OUT/bench_cuda.json']))" \
    2>&1 | grep -v "it/s" | tee "$OUT/bench_cuda.txt"
if [ "${FILTERS:-1}" != 0 ] && "$PY" -c "import cupy" 2>/dev/null; then
    # BENCH_RECORD=1: a run with options writes results/filters_cuda.local.json, and the committed file was copied
    boxed 90 env BENCH_RECORD=1 "$PY" benchmarks/bench_filters.py --cupy --size "$SIZE" --chunks 128 --threads "$(nproc)" 2>&1 \
        | tee "$OUT/filters_cuda.txt" && cp benchmarks/results/filters_cuda.json "$OUT/"
fi
if [ "$TRAIN_MINUTES" != 0 ] && [ "$(left)" -gt $((150 * TRAIN_MINUTES)) ]; then
    mkdir -p /tmp/bigseg-bin "$OUT/train"
    printf '#!/bin/sh\nexec "%s" -m bigseg "$@"\n' "$PY" > /tmp/bigseg-bin/bigseg && chmod +x /tmp/bigseg-bin/bigseg
    t0=$SECONDS
    boxed 600 env DEVICE="$DEVICE" PY="$PY" BIGSEG=/tmp/bigseg-bin/bigseg MINUTES="$TRAIN_MINUTES" \
        MINUTES2="$TRAIN_MINUTES" THREADS="${THREADS:-4}" AMP="${AMP:-bf16}" OUT="$OUT/train" \
        DATA_WORKERS="${DATA_WORKERS:-$(($(nproc) > 3 ? $(nproc) - 2 : 0))}" scripts/train_default.sh 2>&1 \
        | grep -v "it/s" | tail -40 | tee "$OUT/train.txt"
    echo "train_default.sh on $DEVICE: $((SECONDS - t0)) s" | tee -a "$OUT/train.txt"
else
    echo "training skipped (TRAIN_MINUTES=$TRAIN_MINUTES, $(left) s left)"
fi
if [ "${CAPACITY_STEPS:-0}" != 0 ]; then  # issue 6's long run on the GPU (opt-in: minutes per preset)
    boxed 600 env DEVICE="$DEVICE" STEPS="$CAPACITY_STEPS" BATCH="${BATCH:-16}" WIDE="${WIDE:-32,64,128}" \
        PRESETS="${PRESETS:-nano-ct-phase}" NAME=model_capacity_cuda "$PY" benchmarks/bench_model_capacity.py 2>&1 \
        | tee "$OUT/capacity.txt"
    cp benchmarks/results/model_capacity_cuda.json "$OUT/" 2>/dev/null
fi
echo "gpu_check: done in $SECONDS s; results in $OUT"
if [ -n "${PACK:-}" ]; then  # one archive (a lent machine sends back only a few files): PACK=DIR/name.tgz
    if tar czf "$PACK" -C "$(dirname "$OUT")" "$(basename "$OUT")"; then echo "packed into $PACK"; else echo "packing into $PACK failed" >&2; fi
fi
