"""``python -m export import-onnx``: an ONNX model trained anywhere to a checked model bundle."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.cli_support import add_json_flag, print_report
from edge.errors import UsageError
from edge.scale import BDI_II, SCALE_CHOICES, NamedScale, parse_scale
from export.degenerate import OutputCheckSource
from export.import_onnx import IntakeSpec, import_onnx, tiles_option

NAME = "import-onnx"
HELP = "make a bundle of an ONNX model of any architecture (checked with onnx.checker and ONNX Runtime)"
EXAMPLES = """\
  python -m export import-onnx model.onnx --out bundles/mine                       # layout and size from its input
  python -m export import-onnx model.onnx --layout NCTHW --frames 16 --size 112 --mean 0.485,0.456,0.406 \\
      --std 0.229,0.224,0.225 --out bundles/mine --json
  python -m export import-onnx model.onnx --intake intake.toml --out bundles/mine  # TOML: see export/import_onnx.py
"""


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected three numbers like 0.485,0.456,0.406, got {text!r}") from exc
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers (R,G,B), got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``import-onnx``."""
    parser.add_argument("model", type=Path, help="the ONNX file")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to create")
    parser.add_argument("--intake", type=Path, metavar="TOML", help="layout, frames, size, normalisation, tiles")
    parser.add_argument("--layout", choices=("NTCHW", "NCTHW"), help="input layout (default: read off its shape)")
    parser.add_argument("--frames", type=int, help="frames per window (default: the input's, else 16)")
    parser.add_argument("--size", type=int, help="mosaic side in pixels (default: the input's, else 112)")
    parser.add_argument("--sample-fps", type=float, help="frames sampled per second (default 8)")
    parser.add_argument("--window-stride", type=int, help="frames between window starts (default: frames / 2)")
    parser.add_argument("--scale", type=float, help="pixel scale before mean/std (default 1/255)")
    parser.add_argument("--mean", type=_floats, help="per-channel RGB mean after scaling (default: ImageNet video)")
    parser.add_argument("--std", type=_floats, help="per-channel RGB std after scaling (default: ImageNet video)")
    parser.add_argument("--tile", action="append", default=[], metavar="REGION:X,Y,W,H",
                        help="a mosaic tile (repeatable; default: the zoo's tiles scaled to --size)")  # fmt: skip
    parser.add_argument("--check-videos", type=Path, nargs="+", metavar="VIDEO",
                        help="videos for the degenerate-model check (default: samples/*.mp4)")  # fmt: skip
    parser.add_argument("--allow-degenerate", action="store_true", help="import even if scores are constant/pinned")
    parser.add_argument("--output-scale", type=parse_scale, default=BDI_II, metavar="SCALE",
                        help=f"the scale the model's output is on: {SCALE_CHOICES} (default BDI-II)")  # fmt: skip
    parser.add_argument("--output", action="append", default=[], type=named_output, metavar="NAME:SCALE",
                        help="a named output (repeatable, in the order of the model's (N, K) output columns, "
                        "the first primary), e.g. bdi_ii:bdi-ii phq9:phq-9; SCALE as for --output-scale")  # fmt: skip
    parser.add_argument("--name", help="model name for the manifest (default: the file's stem)")
    parser.add_argument("--training-data", help="one paragraph on the model's training data, for the model card")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle at --out")
    add_json_flag(parser)


def named_output(text: str) -> NamedScale:
    """``NAME:SCALE`` (``phq9:phq-9``, ``gad:custom:0:21``) as an output's name and scale."""
    name, _, scale = text.partition(":")
    if not name or not scale:
        raise argparse.ArgumentTypeError(f"expected NAME:SCALE like phq9:phq-9, got {text!r}")
    return NamedScale(name, parse_scale(scale))


def render(report: dict[str, Any]) -> str:
    """The report as a few lines."""
    shape, check = report["input"], report["output_check"]
    lines = [
        f"bundle       {report['bundle']} ({report['architecture']}, {report['parameters']:,} parameters)",
        f"input        {shape['name']} {shape['layout']} frames={shape['frames']} {shape['height']}x{shape['width']} "
        f"at {shape['sample_fps']} fps",
        f"checked      onnx.checker (full), ONNX Runtime on a batch of 2, output {report['output']!r}",
    ]
    if check:
        lines.append(f"outputs      {check['verdict']}: {check['windows']} real windows scored {check['low']:.3g} to "
                     f"{check['high']:.3g} (std {check['std']:.3g})")  # fmt: skip
    lines.append(report["notice"])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Check the model, write the bundle and print what was made."""
    if args.output and args.output_scale is not BDI_II:
        raise UsageError("--output-scale and --output both name scales", fix="name every output with --output alone")
    normalization = {k: v for k, v in (("scale", args.scale), ("mean", args.mean), ("std", args.std)) if v is not None}
    given = IntakeSpec(
        args.layout, args.frames, args.size, args.sample_fps, args.window_stride, normalization,
        tiles_option(args.tile) if args.tile else None,
    )  # fmt: skip
    spec = IntakeSpec.from_toml(args.intake).merged(given) if args.intake else given
    check = OutputCheckSource(tuple(args.check_videos) if args.check_videos else None, None, args.allow_degenerate)
    result = import_onnx(args.model, args.out, spec, name=args.name, training_data=args.training_data,
                         check=check, force=args.force, scale=args.output_scale, outputs=args.output)  # fmt: skip
    manifest = result.bundle.manifest
    report = {
        "bundle": str(result.bundle.root),
        "architecture": manifest["model"]["architecture"],
        "parameters": manifest["model"]["parameters"],
        "input": manifest["input"],
        "output": ", ".join(o.name for o in result.bundle.outputs),
        "output_check": result.output_check.as_dict() if result.output_check else None,
        "notice": NOT_A_DIAGNOSTIC_DEVICE,
    }
    print_report(report, as_json=args.json, render=render)
    return 0
