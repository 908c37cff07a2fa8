#!/usr/bin/env bash
# Train bigseg's bundled default model on synthetic electrodes (generator in the loop) and
# write its training report. Seeds are fixed; each stage is time-boxed (--max-minutes), so the
# number of steps reached depends on the machine (recorded in the report).
#
# Two stages (unet3d): (1) from scratch on electrodes with mean particle radii of 5-12 voxels;
# (2) fine-tuned from stage 1 on radii of 5-20 voxels (log-uniform), so that coarse
# microstructures (nano-CT voxels make NMC particles tens of voxels wide) are segmented as well
# as fine ones. The checkpoint carries both stages' provenance (provenance["parent"]).
#
#   scripts/train_default.sh            # CPU recipe: 1 thread, bf16 autocast, 50 + 55 min
#   DEVICE=cuda DATA_WORKERS=14 scripts/train_default.sh  # on a GPU (AMP): same recipe, the volumes made
#                                         # ahead in 14 processes (the same volumes: the simulator,
#                                         # not the GPU, sets the pace)
#   ARCH=lrcsnet scripts/train_default.sh # the earlier 2D LRCS-Net-style default (96² patches)
#
# The default is a compact 3D U-Net (16, 32, 64 channels, 32³ patches): at the simulated
# nano-CT contrast-to-noise, CBD and pore are told apart only with 3D context, which a 2D
# network lacks (it stayed below a random forest with 3D features).
#
# Outputs: bigseg/models/weights/default.pt (float16 weights), bigseg/models/weights/default_report.json,
# docs/images/training_report.png (with OUT=DIR: DIR/default.pt, DIR/default_report.json,
# DIR/training_report.png).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BIGSEG=${BIGSEG:-.venv/bin/bigseg}
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-1}
DATA_WORKERS=${DATA_WORKERS:-0}
MINUTES=${MINUTES:-50}
MINUTES2=${MINUTES2:-55}
ARCH=${ARCH:-unet3d}
AMP=${AMP:-bf16}
OUT=${OUT:-bigseg/models/weights}
PNG=${PNG:-$([ "$OUT" = bigseg/models/weights ] && echo docs/images/training_report.png || echo "$OUT/training_report.png")}
TMP=${TMP:-$(mktemp -d)}
mkdir -p "$OUT"  # before the hours of training, not after

if [ "$ARCH" = unet3d ]; then
  RECIPE=(--arch unet3d --channels 16,32,64 --patch 32,32,32 --epochs 40 --steps-per-epoch 250
          --batch-size 4 --lr 2e-3 --lr-decay 0.92 --shape 48,96,96 --batches-per-volume 8 --radius-range 5,12)
  STAGE2=(--arch unet3d --patch 32,32,32 --epochs 40 --steps-per-epoch 250 --batch-size 4 --lr 5e-4
          --lr-decay 0.93 --shape 48,96,96 --batches-per-volume 8 --radius-range 5,20 --seed 2028
          --max-minutes "$MINUTES2")
else
  RECIPE=(--arch lrcsnet --kernels 32 --kernel-size 5 --growth 1.5 --patch 96,96
          --epochs 30 --steps-per-epoch 200 --batch-size 8 --lr 1e-3 --lr-decay 0.85 --batches-per-volume 6)
  STAGE2=()
fi
nice -n 10 "$BIGSEG" train --synthetic "${RECIPE[@]}" \
  --seed 2026 --device "$DEVICE" --amp "$AMP" --threads "$THREADS" --data-workers "$DATA_WORKERS" \
  --max-minutes "$MINUTES" --half \
  -o "$TMP/default.pt" --report "$TMP/report.json" --overwrite
if [ ${#STAGE2[@]} -gt 0 ]; then
  mv "$TMP/default.pt" "$TMP/stage1.pt"
  nice -n 10 "$BIGSEG" train --synthetic --init "$TMP/stage1.pt" "${STAGE2[@]}" \
    --device "$DEVICE" --amp "$AMP" --threads "$THREADS" --data-workers "$DATA_WORKERS" --half \
    -o "$TMP/default.pt" --report "$TMP/report.json" --overwrite
fi

cp "$TMP/default.pt" "$OUT/default.pt.tmp" && mv "$OUT/default.pt.tmp" "$OUT/default.pt"
echo "default model written to $OUT/default.pt"
nice -n 10 "$PY" -m bigseg.train._report "$OUT/default.pt" \
  --json "$OUT/default_report.json" --png "$PNG"
