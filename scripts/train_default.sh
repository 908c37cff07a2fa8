#!/usr/bin/env bash
# Train bigseg's bundled default model on synthetic electrodes (generator in the loop) and
# write its training report. Seeds are fixed; the run is time-boxed (--max-minutes), so the
# number of steps reached depends on the machine (recorded in the report).
#
#   scripts/train_default.sh            # CPU recipe: 1 thread, bf16 autocast, 50 min
#   DEVICE=cuda scripts/train_default.sh  # on a GPU (AMP), same recipe, more steps per minute
#   ARCH=lrcsnet scripts/train_default.sh # the earlier 2D LRCS-Net-style default (96² patches)
#
# The default is a compact 3D U-Net (16, 32, 64 channels, 32³ patches): at the simulated
# nano-CT contrast-to-noise, CBD and pore are told apart only with 3D context, which a 2D
# network lacks (it stayed below a random forest with 3D features).
#
# Outputs: bigseg/models/weights/default.pt (float16 weights), bigseg/models/weights/default_report.json,
# docs/images/training_report.png.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BIGSEG=${BIGSEG:-.venv/bin/bigseg}
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-1}
MINUTES=${MINUTES:-50}
ARCH=${ARCH:-unet3d}
AMP=${AMP:-bf16}
OUT=${OUT:-bigseg/models/weights}
TMP=${TMP:-$(mktemp -d)}

if [ "$ARCH" = unet3d ]; then
  RECIPE=(--arch unet3d --channels 16,32,64 --patch 32,32,32 --epochs 40 --steps-per-epoch 250
          --batch-size 4 --lr 2e-3 --lr-decay 0.92 --shape 48,96,96 --batches-per-volume 8)
else
  RECIPE=(--arch lrcsnet --kernels 32 --kernel-size 5 --growth 1.5 --patch 96,96
          --epochs 30 --steps-per-epoch 200 --batch-size 8 --lr 1e-3 --lr-decay 0.85 --batches-per-volume 6)
fi
nice -n 10 "$BIGSEG" train --synthetic "${RECIPE[@]}" \
  --seed 2026 --device "$DEVICE" --amp "$AMP" --threads "$THREADS" \
  --max-minutes "$MINUTES" --half \
  -o "$TMP/default.pt" --report "$TMP/report.json" --overwrite

cp "$TMP/default.pt" "$OUT/default.pt.tmp" && mv "$OUT/default.pt.tmp" "$OUT/default.pt"
echo "default model written to $OUT/default.pt"
nice -n 10 "$PY" -m bigseg.train._report "$OUT/default.pt" "$TMP/report.json" \
  --json "$OUT/default_report.json" --png docs/images/training_report.png
