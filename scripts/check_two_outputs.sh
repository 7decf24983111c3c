#!/usr/bin/env bash
# Measure training a head of two outputs against one, on synthetic data (docs/model-intake.md, "Several outputs").
#
#   scripts/check_two_outputs.sh [WORK_DIR]
#
# Renders 72 training and 18 held-out clips with BDI-II labels and PHQ-9 ones (the same latent on both scales,
# export/synthetic/README.md), blanks the PHQ-9 label of every third training video (a missing questionnaire:
# masked, never 0), trains the demo's small expresso-tsm with both outputs and, on the full labels, with BDI-II
# alone, exports both and evaluates them on the held-out clips. Clips already in WORK_DIR are reused. About 5 min on
# a 2-core CPU (4 with the clips reused). Prints each run's held-out MAE beside its baseline.
set -euo pipefail
trap 'echo "check_two_outputs.sh: a step failed; its log is in $WORK" >&2' ERR

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-$(mktemp -d -t expresso-two-outputs-XXXXXX)}"
PY="${PYTHON:-python}"
cd "$ROOT"
echo "work directory: $WORK"

for split in train heldout; do
    count=$([[ $split == train ]] && echo 72 || echo 18)
    [[ -f "$WORK/$split/labels.csv" ]] || "$PY" -m export sample-data --out "$WORK/$split" --split "$split" \
        --count "$count" --seed 0 --also-output phq9:phq-9
done
"$PY" - "$WORK/train" <<'PY'
import csv, sys
with open(f"{sys.argv[1]}/labels.csv", newline="") as handle:
    rows = list(csv.DictReader(handle))
for row in rows[::3]:
    row["phq9"] = ""
with open(f"{sys.argv[1]}/labels_masked.csv", "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
PY

COMMON=(--arch expresso-tsm --epochs 8 --seed 0 --val-fraction 0.2 --size 64 --option stem=16
        --option 'widths=[24,48,96]' --group-columns photo,skin_tone,lighting,background --json)
"$PY" -m export train --labels "$WORK/train/labels_masked.csv" --out "$WORK/two" "${COMMON[@]}" \
    --output bdi_ii:bdi-ii --output phq9:phq-9 > "$WORK/two.json" 2> "$WORK/two.log"
"$PY" -m export train --labels "$WORK/train/labels.csv" --out "$WORK/one" "${COMMON[@]}" > "$WORK/one.json" 2> "$WORK/one.log"
for run in two one; do
    "$PY" -m export onnx --checkpoint "$WORK/$run/best.pt" --out "$WORK/${run}_bundle" --force > "$WORK/${run}_onnx.log" 2>&1
    "$PY" -m export evaluate "$WORK/${run}_bundle" --labels "$WORK/heldout/labels.csv" --json \
        > "$WORK/${run}_evaluate.json" 2> "$WORK/${run}_evaluate.log"
done
"$PY" - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
for run in ("two", "one"):
    report = json.load(open(f"{work}/{run}_evaluate.json"))
    for section in [report, *[o for o in report.get("outputs", []) if o.get("evaluated")]]:
        m, b = section["model_metrics"], section["baseline"]
        print(f"{run}-output model, {section['output']} ({section['units']}), held-out: MAE {m['mae']:.2f} "
              f"[{m['mae_ci'][0]:.2f}-{m['mae_ci'][1]:.2f}], baseline (training mean) MAE {b['mae']:.2f}")
PY
