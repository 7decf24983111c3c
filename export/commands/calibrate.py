"""``python -m export calibrate``: INT8 Q/DQ models, TensorRT table and accuracy report, gated against FP32."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from calibration.dataset import load_set
from calibration.pipeline import MAX_DELTA_SHARE, REPORT_HTML, calibrate_bundle
from calibration.quantize import METHODS
from edge.bundle import load_bundle
from edge.cli_support import add_json_flag, print_report
from edge.scale import BDI_II
from export.signing import add_key_option, after_rewrite, was_signed

NAME = "calibrate"
HELP = "quantize a bundle to INT8 (ONNX Runtime and TensorRT Q/DQ models, TensorRT table) from a calibration set"
EXAMPLES = """\
  python -m export calibrate edge/assets/demo_bundle --calib /tmp/calib
  python -m export calibrate BUNDLE --calib SET --method entropy --max-delta 0.5 --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``calibrate``."""
    parser.add_argument("bundle", type=Path, help="bundle directory with an FP32 ONNX model")
    parser.add_argument("--calib", type=Path, required=True, help="set from `python -m calibration collect`")
    parser.add_argument("--method", choices=sorted(METHODS), default="minmax", help="range calibration (minmax)")
    parser.add_argument(
        "--max-delta",
        type=float,
        help="largest mean |INT8 - FP32| on held-out windows, in the output scale's points (default "
        f"{MAX_DELTA_SHARE:.0%}% of the output range: 0.63 BDI-II, 0.27 PHQ-9)",
    )
    parser.add_argument(
        "--holdout-fraction", type=float, default=0.25, help="share of windows held out to measure accuracy (0.25)"
    )
    add_key_option(parser)
    add_json_flag(parser)


def _render(report: dict[str, Any]) -> str:
    lines = [
        f"INT8 calibration of {report['model']} ({report['method']}), {report['windows']['held_out']} held-out "
        f"windows, against FP32 ({report['gate'].get('units', BDI_II.name)} points):"
    ]
    for name, m in report["accuracy"]["against_fp32"].items():
        lines.append(
            f"  {name:22s} MAE {m['mae']:.3f}  RMSE {m['rmse']:.3f}  max {m['max_abs']:.3f}  "
            f"band agreement {m['band_agreement']:.1%}"
        )
    labels = report["accuracy"]["against_labels"]
    if labels:
        lines.append(
            f"against labels ({labels['windows']} windows): "
            + ", ".join(f"{name} MAE {labels[name]['mae']:.2f}" for name in labels if name != "windows")
        )
    gate = report["gate"]
    lines.append(f"gate: {gate['measured_delta']:.3f} <= {gate['max_delta']:.3f}: passed")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Calibrate, gate, record in the manifest."""
    bundle = load_bundle(args.bundle)
    signed_before = was_signed(args.bundle)
    outcome = calibrate_bundle(
        bundle,
        load_set(args.calib),
        method=args.method,
        max_delta=args.max_delta,
        holdout_fraction=args.holdout_fraction,
    )
    print_report(outcome.report, as_json=args.json, render=_render)
    signing = after_rewrite(args.bundle, args.key, args.signer, signed_before=signed_before)
    if signing:
        print(signing, file=sys.stderr)
    if not args.json:
        print(f"recorded in {outcome.bundle.root / 'manifest.json'}; report: {outcome.bundle.root / REPORT_HTML}")
    return 0
