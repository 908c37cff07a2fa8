#!/usr/bin/env bash
# The GPU checks in one run, for a machine with an NVIDIA GPU whose python3 has torch and CuPy
# (e.g. the lent device: carry .whl from scripts/fetch_device_wheels.sh). Writes what it finds
# under $OUT (default /tmp/bigseg-gpu-check): env.txt, pytest_gpu.txt, bench_cuda.txt/.json,
# cluster.txt. About 5 minutes on one H100/H200.
#
#   OUT=$OUT scripts/gpu_check.sh
#
# 1. the GPU tests: CuPy filters, CuPy blocks through normalize / the classical segmenters /
#    inference / the writer, CUDA inference against the CPU, training steps with AMP;
# 2. bigseg bench on the GPU (256^3: write, filter, segment, measure, particles);
# 3. the default model through a dask-cuda cluster (local-cuda) against one process.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/bigseg-gpu-check}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-256}
WHEELS=${WHEELS:-.whl}
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
# warnings of this machine's own package versions are not failures here
timeout 420 "$PY" -m pytest -q -p no:cacheprovider -rs -W ignore::DeprecationWarning -W ignore::FutureWarning \
    tests/filters/test_cupy.py tests/infer/test_gpu.py tests/test_gpu_paths.py 2>&1 | tee "$OUT/pytest_gpu.txt"
timeout 300 "$PY" -c "from bigseg.cli import main; raise SystemExit(main(['bench', '--size', '$SIZE', '--device', '$DEVICE', '--json', '$OUT/bench_cuda.json']))" \
    2>&1 | grep -v "it/s" | tee "$OUT/bench_cuda.txt"
DEVICE="$DEVICE" timeout 300 "$PY" scripts/gpu_cluster_check.py 2>&1 | grep -v "it/s" | tee "$OUT/cluster.txt"
echo "gpu_check: done; results in $OUT"
