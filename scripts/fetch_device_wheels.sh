#!/usr/bin/env bash
# Download, here, the wheels a GPU machine without bigseg's dependencies needs (its Python has
# torch, CuPy, NumPy, SciPy, scikit-image, xarray, pandas but no dask, distributed, zarr or
# dask-cuda): the versions this checkout's .venv runs, for CPython 3.12 on manylinux x86-64
# (override PY_VERSION). They go to .whl/ (git-ignored through .git/info/exclude); carry that
# folder to the machine and run scripts/gpu_check.sh there, which installs them.
#
#   scripts/fetch_device_wheels.sh          # ~17 MB
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PY_VERSION=${PY_VERSION:-3.12}
DEST=${DEST:-.whl}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p "$DEST"

# what bigseg imports that such an image lacks, and what those need in turn (pure Python
# or binary); each at the version this .venv has
NAMES="dask distributed zarr numcodecs donfig google-crc32c h5netcdf edt tornado zict tblib locket partd xarray"
version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
platforms=""
for n in 17 24 27 28 31 34; do platforms="$platforms --platform manylinux_2_${n}_x86_64"; done
for name in $NAMES; do
    v=$(version "$name")
    echo "fetching $name==$v"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
        $platforms --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" "$name==$v" 2> >(grep -v "is ignored" >&2)
done
# dask-cuda (one worker per GPU) is pure Python; the newest release, as this .venv has none
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
    $platforms -d "$DEST" dask-cuda || echo "dask-cuda: not fetched (the local-cuda check will be skipped)"
du -sh "$DEST"
