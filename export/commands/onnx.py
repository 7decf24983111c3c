"""``python -m export onnx``: a zoo architecture (and checkpoint) to a verified FP32 ONNX model bundle."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.cli_support import add_json_flag, print_report
from edge.errors import UsageError
from edge.layout import DEFAULT_FRAMES, DEFAULT_SIZE, SUPPORTED_FRAMES
from export.bundle_build import (
    EXPORT_STEPS,
    RANDOM_WEIGHTS_WARNING,
    ExportResult,
    export_bundle,
    random_layers_warning,
)
from export.checkpoint import CheckpointError, KeyRename
from export.degenerate import OutputCheckSource
from export.onnx_export import DEFAULT_OPSET, max_opset
from export.zoo import DEFAULT_ARCHITECTURE, HEADS, architectures

NAME = "onnx"
HELP = "export a zoo architecture, with random weights or a checkpoint, to a verified FP32 ONNX model bundle"
EXAMPLES = """\
  python -m export onnx --out bundles/demo                       # expresso-tsm, RANDOM weights (pipeline tests)
  python -m export onnx --arch expresso-tsm --checkpoint runs/best.ckpt --out bundles/tsm-v1
  python -m export onnx --arch r2plus1d_18 --checkpoint r2plus1d_18-91a641e6.pth --frames 16 --out bundles/r21d
  python -m export onnx --option widths=[48,96,160] --frames 32 --out bundles/tsm-small --json
  python -m export onnx --checkpoint lightning.ckpt --head linear --rename-keys fc.1.=fc. --out bundles/mine
"""


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _rename(text: str) -> KeyRename:
    try:
        return KeyRename.parse(text)
    except CheckpointError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``onnx``."""
    known = architectures()
    listing = "; ".join(f"{name}: {arch.description}" for name, arch in known.items())
    parser.add_argument(
        "--arch",
        choices=list(known),
        help=f"architecture (default: the one the checkpoint records or its keys and shapes fit, else "
        f"{DEFAULT_ARCHITECTURE}); {listing}",
    )
    parser.add_argument("--checkpoint", type=Path, help="state_dict, Lightning checkpoint or torchvision weights")
    parser.add_argument(
        "--head",
        choices=HEADS,
        help="output head: sigmoid (bounded to the range; the zoo's) or linear (a plain regression on raw scores, "
        "clipped to the range); default: the checkpoint's record, else sigmoid",
    )
    parser.add_argument(
        "--rename-keys",
        dest="renames",
        type=_rename,
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="rename checkpoint keys starting with OLD to start with NEW, or re:PATTERN=REPLACEMENT (repeatable)",
    )
    check = parser.add_mutually_exclusive_group()
    check.add_argument(
        "--check-videos",
        type=Path,
        nargs="+",
        metavar="VIDEO",
        help="videos whose windows the degenerate-model check scores (default: the repository's samples/*.mp4)",
    )
    check.add_argument("--check-calib", type=Path, metavar="SET", help="a calibration set for that check instead")
    parser.add_argument(
        "--allow-degenerate",
        action="store_true",
        help="export even if scores on real windows are constant or pinned to an end (recorded in the manifest)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        choices=SUPPORTED_FRAMES,
        help=f"window length (default: checkpoint's, else {DEFAULT_FRAMES})",
    )
    parser.add_argument("--size", type=int, help=f"mosaic side in pixels (default: checkpoint's, else {DEFAULT_SIZE})")
    parser.add_argument(
        "--option",
        dest="options",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture option, VALUE as JSON (e.g. widths=[64,128,160]); recorded in the manifest",
    )
    parser.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, {DEFAULT_OPSET} to {max_opset()} with this torch (default %(default)s)",
    )
    parser.add_argument("--name", help="model name for the manifest (default: ARCH-random or ARCH-CHECKPOINT)")
    parser.add_argument("--training-data", help="one paragraph on the checkpoint's training data, for the model card")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to create")
    add_json_flag(parser)


def report_of(result: ExportResult) -> dict[str, Any]:
    """The export's outcome for people and scripts."""
    manifest = result.bundle.manifest
    model = manifest["model"]
    verification = result.verification
    return {
        "bundle": str(result.bundle.root),
        "name": model["name"],
        "architecture": model["architecture"],
        "architecture_options": model.get("architecture_options", {}),
        "architecture_inferred": result.inferred,
        "weights": model["weights"],
        "random_weights": model["weights"]["source"] == "random",
        "output_check": result.output_check.as_dict() if result.output_check else None,
        "parameters": model["parameters"],
        "macs_per_window": model["macs_per_window"],
        "input": {k: manifest["input"][k] for k in ("layout", "frames", "channels", "height", "width")},
        "verification": {
            "windows": verification.windows,
            "max_abs_diff": verification.max_abs_diff,
            "output_std": verification.output_std,
            "std_floor": verification.std_floor,
            "denominator": verification.denominator,
            "ratio": verification.ratio,
            "tolerance": verification.tolerance,
            "passed": verification.passed,
        },
        "artifacts": [{k: a[k] for k in ("path", "precision", "bytes", "sha256")} for a in manifest["artifacts"]],
        "notice": NOT_A_DIAGNOSTIC_DEVICE,
    }


def render(report: dict[str, Any]) -> str:
    """The report as a few lines."""
    shape, check = report["input"], report["verification"]
    lines = []
    if report["random_weights"]:
        lines.append(f"WARNING: {RANDOM_WEIGHTS_WARNING}")
    elif report["weights"].get("random_layers"):
        lines.append(f"WARNING: {random_layers_warning(tuple(report['weights']['random_layers']))}")
    if report["architecture_inferred"]:
        lines.append(f"architecture {report['architecture_inferred']}")
    output = report["output_check"]
    if output is not None:
        lines.append(
            f"outputs      {output['verdict']}: {output['windows']} real windows scored {output['low']:.3g} to "
            f"{output['high']:.3g} (std {output['std']:.3g})"
        )
    lines += [
        f"bundle       {report['bundle']}",
        f"model        {report['name']} ({report['architecture']} {json.dumps(report['architecture_options'])})",
        f"weights      {report['weights']['source']}: {report['weights'].get('note', '')}",
        f"input        {shape['layout']} frames={shape['frames']} {shape['height']}x{shape['width']}",
        f"size         {report['parameters']:,} parameters, {report['macs_per_window'] / 1e9:.3f} GMAC per window",
        f"verification max |ORT - PyTorch| {check['max_abs_diff']:.3g} / max(output std {check['output_std']:.3g}, "
        f"{check['std_floor']:.3g}) = ratio {check['ratio']:.3g} (limit {check['tolerance']:g}) "
        f"on {check['windows']} random windows",
    ]
    lines += [
        f"artifact     {a['path']} {a['precision']} {a['bytes']:,} B sha256 {a['sha256']}" for a in report["artifacts"]
    ]
    lines.append(report["notice"])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Export, verify and write the bundle; print what was made."""
    highest = max_opset()
    if not DEFAULT_OPSET <= args.opset <= highest:
        raise UsageError(
            f"--opset {args.opset} is outside {DEFAULT_OPSET} to {highest}, the opsets torch {torch.__version__} "
            "exports here",
            fix=f"pass --opset between {DEFAULT_OPSET} and {highest} (default {DEFAULT_OPSET})",
        )
    with tqdm(total=len(EXPORT_STEPS), desc="export", unit="step", file=sys.stderr, leave=False) as bar:

        def advance(step: str) -> None:
            bar.set_postfix_str(step)
            bar.update(1)

        result = export_bundle(
            args.arch,
            args.out,
            checkpoint=args.checkpoint,
            frames=args.frames,
            size=args.size,
            options=dict(args.options),
            opset=args.opset,
            name=args.name,
            training_data=args.training_data,
            force=args.force,
            on_step=advance,
            renames=tuple(args.renames),
            head=args.head,
            check=OutputCheckSource(
                tuple(args.check_videos) if args.check_videos else None, args.check_calib, args.allow_degenerate
            ),
        )
    print_report(report_of(result), as_json=args.json, render=render)
    return 0
