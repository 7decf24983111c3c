#!/usr/bin/env bash
# Regenerate the bundled demo model (edge/assets/demo_bundle) and the committed sample videos (samples/).
#
#   scripts/make_demo_bundle.sh [WORK_DIR]
#
# 1. samples/: the 3 committed demo videos (python -m export sample-data --split demo).
# 2. WORK_DIR/train, WORK_DIR/heldout: synthetic training and held-out videos (never committed; held-out
#    identities, clip seeds and lighting kinds are unseen in training).
# 3. python -m export train: expresso-tsm, shrunk to run on a laptop CPU in minutes (64 px mosaic, narrow
#    widths); the checkpoint is chosen on identities held back from the training CSV.
# 4. python -m export.demo_bundle: export the best checkpoint to FP32 ONNX, score the bundle through ONNX
#    Runtime on the held-out videos beside the train-mean baseline, and write the model card (synthetic
#    behaviour, nothing clinical, demonstration and tests only, not a diagnostic device) with those metrics.
#
# Everything is seeded: the same seeds give the same frames and the same training batches. The MP4 bytes and the
# trained weights may still differ slightly across machines (encoder builds, floating-point summation order).
# Windows live in memory only. About 7 minutes on a 2-core CPU.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-$(mktemp -d -t expresso-demo-XXXXXX)}"
SEED="${SEED:-0}"
EPOCHS="${EPOCHS:-8}"
cd "$ROOT"
echo "work directory: $WORK"

rm -rf samples && python -m export sample-data --out samples --split demo --count 3 --seed "$SEED"
python -m export sample-data --out "$WORK/train" --split train --count 72 --seed "$SEED"
python -m export sample-data --out "$WORK/heldout" --split heldout --count 18 --seed "$SEED"

python -m export train --arch expresso-tsm --labels "$WORK/train/labels.csv" --out "$WORK/run" \
    --epochs "$EPOCHS" --seed "$SEED" --val-fraction 0.2 --size 64 \
    --option stem=16 --option 'widths=[24,48,96]' --group-columns photo,skin_tone,lighting,background

python -m export.demo_bundle --run "$WORK/run" --heldout "$WORK/heldout/labels.csv" --out edge/assets/demo_bundle
# the checkpoint the bundle was exported from (its SHA-256 is in the manifest): gradient explanations of the demo
cp "$WORK/run/best.pt" export/assets/demo_checkpoint.pt

# INT8: a calibration set from the sample videos (face crops: it stays in WORK, never in the repository or the
# bundle), then both Q/DQ models, the TensorRT table and the accuracy report, gated at 1% of the output range.
python -m calibration collect samples/*.mp4 --bundle edge/assets/demo_bundle --labels samples/labels.csv \
    --out "$WORK/calib"
python -m export calibrate edge/assets/demo_bundle --calib "$WORK/calib" --method minmax
echo "demo bundle written to edge/assets/demo_bundle (training run and reports in $WORK/run)"
