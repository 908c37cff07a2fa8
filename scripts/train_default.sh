#!/usr/bin/env bash
# Train bigseg's bundled default model on synthetic electrodes (generator in the loop) and
# write its training report. Seeds are fixed; the run is time-boxed (--max-minutes), so the
# number of steps reached depends on the machine (recorded in the report).
#
#   scripts/train_default.sh            # CPU recipe: 1 thread, bf16 autocast, ~55 min
#   DEVICE=cuda scripts/train_default.sh  # on a GPU (AMP), same recipe, more steps per minute
#
# Outputs: bigseg/models/weights/default.pt (float16 weights), bigseg/models/weights/default_report.json,
# docs/images/training_report.png.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BIGSEG=${BIGSEG:-.venv/bin/bigseg}
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-1}
MINUTES=${MINUTES:-55}
AMP=${AMP:-bf16}
OUT=${OUT:-bigseg/models/weights}
TMP=${TMP:-$(mktemp -d)}

nice -n 10 "$BIGSEG" train --synthetic \
  --arch lrcsnet --kernels 32 --kernel-size 5 --growth 1.5 --patch 96,96 \
  --epochs 30 --steps-per-epoch 200 --batch-size 8 --lr 1e-3 --lr-decay 0.85 \
  --batches-per-volume 6 --seed 2026 --device "$DEVICE" --amp "$AMP" --threads "$THREADS" \
  --max-minutes "$MINUTES" --half \
  -o "$TMP/default.pt" --report "$TMP/report.json" --overwrite

cp "$TMP/default.pt" "$OUT/default.pt.tmp" && mv "$OUT/default.pt.tmp" "$OUT/default.pt"
echo "default model written to $OUT/default.pt"
nice -n 10 "$PY" -m bigseg.train._report "$OUT/default.pt" "$TMP/report.json" \
  --json "$OUT/default_report.json" --png docs/images/training_report.png
