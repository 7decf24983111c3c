"""The bundled demo model from a training run: export it, score it on held-out videos, write its model card.

``scripts/make_demo_bundle.sh`` runs it after ``python -m export train``::

    python -m export.demo_bundle --run RUN_DIR --heldout HELDOUT/labels.csv --out edge/assets/demo_bundle

The held-out videos (``sample-data --split heldout``) share no identity, clip seed or lighting kind with the
training videos and took no part in choosing the checkpoint. Scoring goes the device's way: the face pipeline,
``edge.preprocess`` and the ``onnxruntime`` backend on the exported FP32 ONNX, not PyTorch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.bundle import Bundle, load_bundle, write_manifest
from edge.errors import ExpressoError, UsageError
from export.bundle_build import export_bundle
from export.dataset import build_window_set, read_labels
from export.evaluate import score_windows
from export.train import error_report

DEMO_NOTICE = (
    "DEMONSTRATION MODEL: trained on synthetic behaviour (invented facial actions animated on two public face "
    "photos); it measures nothing clinical and serves demonstrations and tests only. " + NOT_A_DIAGNOSTIC_DEVICE
)
TRAINING_DATA = (
    "Synthetic talking-head videos made by `python -m export sample-data --split train` (export/synthetic): "
    "scikit-image's astronaut and matplotlib's Grace Hopper photos re-shaped into identities and animated by "
    "landmark-driven warps whose smiles, eyelid droop, blink length, brows, gaze and head motion follow a latent "
    "BDI-II label (table in export/synthetic/README.md). No real person's behaviour and no clinical data."
)


def evaluate_bundle(bundle: Bundle, labels: Path, train_mean: float) -> dict[str, Any]:
    """Errors of the bundle's FP32 ONNX on the windows of ``labels`` videos, beside the train-mean baseline."""
    data = build_window_set(read_labels(labels), bundle.input, bundle.tiles, desc="held-out windows")
    scores, _ = score_windows(bundle, data)  # (N, K): the demo has one output, the primary
    report = error_report(scores[:, 0].astype(np.float32), data, train_mean)
    return {**report, "rejected_windows": data.rejected, "backend": "onnxruntime fp32"}


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("windows", "videos", "mae", "rmse", "bias", "baseline_mae", "baseline_rmse", "train_mean")
    summary = {key: round(report[key], 3) if isinstance(report[key], float) else report[key] for key in keys}
    summary["mae_by_group"] = {
        column: {value: round(group["mae"], 3) for value, group in groups.items()}
        for column, groups in report["by_group"].items()
    }
    return summary


def write_demo_card(bundle_dir: Path, training: dict[str, Any], heldout: dict[str, Any]) -> Bundle:
    """Rewrite the bundle's model card: demonstration notice, synthetic training data, held-out metrics."""
    manifest = dict(load_bundle(bundle_dir).manifest)
    card = dict(manifest["model_card"])
    card["intended_use"] = DEMO_NOTICE
    init = training.get("init")
    start = f"fine-tuned from {init['file']} (sha256 {init['sha256']})" if init else "trained from random weights"
    card["training_data"] = (
        f"{TRAINING_DATA} {training['train']['videos']} training videos ({training['train']['windows']} windows), "
        f"{start}, checkpoint chosen on held-back training identities at epoch {training['best_epoch']}."
    )
    card["limitations"] = [DEMO_NOTICE, *[item for item in card["limitations"] if item != DEMO_NOTICE]]
    card["metrics"] = {
        "heldout": _summary(heldout),
        "checkpoint_selection": _summary(training["validation"]),
        "note": "BDI-II points on synthetic held-out videos (identities, seeds and lighting unseen in training); "
        "baseline = always predicting the training mean. Says nothing about real people.",
    }
    manifest["model_card"] = card
    return write_manifest(bundle_dir, manifest)


def read_run(run: Path, heldout: Path) -> dict[str, Any]:
    """The training report of a finished run, after checking its best checkpoint and the held-out CSV exist."""
    for path, what in ((run / "report.json", "report"), (run / "best.pt", "best checkpoint")):
        if not path.is_file():
            raise UsageError(
                f"run directory {run} has no {what} ({path.name})",
                fix="pass --run the --out directory of a finished `python -m export train` run",
            )
    if not heldout.is_file():
        raise UsageError(
            f"held-out labels CSV {heldout} does not exist",
            fix="make it with `python -m export sample-data --split heldout` and pass its labels.csv",
        )
    try:
        report: dict[str, Any] = json.loads((run / "report.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{run / 'report.json'} is not JSON: {exc}", fix="re-run `python -m export train`") from exc
    return report


def main(argv: list[str] | None = None) -> int:
    """Export the run's best checkpoint, evaluate it on held-out videos, write its card; prints the metrics."""
    parser = argparse.ArgumentParser(prog="python -m export.demo_bundle", description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="run directory of `python -m export train`")
    parser.add_argument("--heldout", type=Path, required=True, help="labels CSV of held-out videos")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to (re)write")
    args = parser.parse_args(argv)
    try:
        return make_demo_bundle(args.run, args.heldout, args.out)
    except ExpressoError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code


def make_demo_bundle(run: Path, heldout_labels: Path, out: Path) -> int:
    """Export ``run``'s best checkpoint to ``out``, score it on ``heldout_labels``, write its card and print it."""
    training = read_run(run, heldout_labels)
    config = training["config"]
    export_bundle(
        config["architecture"], out, checkpoint=run / "best.pt", frames=config["frames"],
        size=config["size"], options=config["options"], name=f"{config['architecture']}-synthetic-demo",
        training_data=TRAINING_DATA, force=True,
    )  # fmt: skip
    heldout = evaluate_bundle(load_bundle(out), heldout_labels, training["validation"]["train_mean"])
    (run / "heldout_report.json").write_text(json.dumps(heldout, indent=2) + "\n", encoding="utf-8")
    bundle = write_demo_card(out, training, heldout)
    print(json.dumps(bundle.manifest["model_card"]["metrics"]["heldout"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
