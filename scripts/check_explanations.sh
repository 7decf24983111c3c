#!/usr/bin/env bash
# Check the explanations on synthetic data where the truth is known (docs/explanations.md, "Checked on synthetic
# data"): prints every figure as one JSON line.
#
#   scripts/check_explanations.sh [WORK_DIR] [DEMO_CHECKPOINT]
#
# 1. For each planted region (mouth, eyes): 96 training and 12 held-out clips of 8 s whose label drives that
#    region's behaviour only (python -m export sample-data --signal-regions), a small expresso-tsm trained for
#    6 epochs (64 px mosaic, the demo's widths), then python -m export explain on
#    the held-out clips with DeepLift and with occlusion: the top-region hit rate for windows of above-median
#    videos, and the rank agreement of the two methods. (32 clips were too few for the mouth: the model's scores
#    followed the label at r = 0.30-0.38.)
# 2. Model randomisation (Adebayo et al., 2018): the eyes model's weights replaced by random ones (same
#    architecture and manifest), explained again; the distance to the trained model's explanations.
# 3. The demo model's nose share on its 18 held-out clips, by occlusion and by DeepLift on its checkpoint
#    (DEMO_CHECKPOINT, default export/assets/demo_checkpoint.pt), and the two methods' rank agreement.
# 4. Behaviour descriptors against the generator's per-frame actions on 6 rendered clips.
#
# A WORK_DIR from an earlier run is reused: its rendered clips are not rendered again (the models are retrained).
# Windows and landmarks stay in memory. About 15 minutes on a 2-core CPU, a third of it rendering (COUNT and
# EPOCHS override the defaults).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-$(mktemp -d -t expresso-explain-check-XXXXXX)}"
DEMO_CHECKPOINT="${2:-$ROOT/export/assets/demo_checkpoint.pt}"
EPOCHS="${EPOCHS:-6}"
COUNT="${COUNT:-96}"
cd "$ROOT"
echo "work directory: $WORK (log: $WORK/check.log)" >&2
LOG="$WORK/check.log"
mkdir -p "$WORK"
# each step's output goes to the log; a failing step stops the script and shows the log's end
trap 'echo "check_explanations.sh failed; the end of $LOG:" >&2; tail -n 30 "$LOG" >&2' ERR
check() { python -m export.explain.check "$@" 2>>"$LOG"; }
# render DIR COUNT ARGS...: sample-data into DIR, unless an earlier run in this WORK_DIR left COUNT clips there
# (the same split, seed, count and arguments always give the same clips)
render() {
    local dir="$1" count="$2"
    shift 2
    if [ -f "$dir/labels.csv" ] && [ "$(($(wc -l <"$dir/labels.csv") - 1))" = "$count" ]; then
        echo "reusing the $count clips in $dir" >&2
    else
        python -m export sample-data --out "$dir" --count "$count" "$@" >>"$LOG" 2>&1
    fi
}
explain() { python -m export explain "$@" --json >>"$LOG" 2>&1; }

for region in mouth eyes; do
    render "$WORK/$region/train" "$COUNT" --split train --seconds 8 --signal-regions "$region"
    render "$WORK/$region/heldout" 12 --split heldout --seconds 8 --signal-regions "$region"
    python -m export train --arch expresso-tsm --labels "$WORK/$region/train/labels.csv" --out "$WORK/$region/run" \
        --epochs "$EPOCHS" --seed 0 --val-fraction 0.2 --size 64 --option stem=16 --option 'widths=[24,48,96]' \
        2>&1 | tee -a "$LOG" | grep "best epoch" >&2
    for method in deeplift occlusion; do
        explain "$WORK/$region/run/best.pt" "$WORK/$region/heldout/"*.mp4 --labels "$WORK/$region/heldout/labels.csv" \
            --method "$method" --out "$WORK/$region/$method"
        check hits "$WORK/$region/$method/explanations.json" --planted "$region"
    done
    check compare "$WORK/$region/deeplift/explanations.json" "$WORK/$region/occlusion/explanations.json"
done

check randomize "$WORK/eyes/run/best.pt" "$WORK/eyes/random.pt"
for method in deeplift occlusion; do
    explain "$WORK/eyes/random.pt" "$WORK/eyes/heldout/"*.mp4 --labels "$WORK/eyes/heldout/labels.csv" \
        --method "$method" --out "$WORK/eyes/random-$method"
    check compare "$WORK/eyes/$method/explanations.json" "$WORK/eyes/random-$method/explanations.json"
    check hits "$WORK/eyes/random-$method/explanations.json" --planted eyes
done

# the demo model on the demo's own 18 held-out clips (make_demo_bundle.sh's split and seed)
render "$WORK/demo/heldout" 18 --split heldout --seed 0
explain edge/assets/demo_bundle "$WORK/demo/heldout/"*.mp4 --labels "$WORK/demo/heldout/labels.csv" \
    --method occlusion --out "$WORK/demo/occlusion"
check nose "$WORK/demo/occlusion/explanations.json"
explain edge/assets/demo_bundle "$WORK/demo/heldout/"*.mp4 --labels "$WORK/demo/heldout/labels.csv" \
    --checkpoint "$DEMO_CHECKPOINT" --out "$WORK/demo/deeplift"
check nose "$WORK/demo/deeplift/explanations.json"
check compare "$WORK/demo/deeplift/explanations.json" "$WORK/demo/occlusion/explanations.json"

check descriptors --count 6 --seconds 8
