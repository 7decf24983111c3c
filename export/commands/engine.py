"""``python -m export engine``: build a TensorRT engine on this device and record it in the bundle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge.bundle import load_bundle
from edge.cli_support import add_json_flag, print_report
from export.engine import DEFAULT_MAX_BATCH, DEFAULT_WORKSPACE_MB, build_engine
from export.signing import add_key_option, after_rewrite, was_signed

NAME = "engine"
HELP = "build a TensorRT engine for this GPU (int8 via Q/DQ on TensorRT >= 10, the calibration table on 8.x)"
EXAMPLES = """\
  python -m export engine /opt/expresso/bundle --precision auto
  python -m export engine BUNDLE --precision fp16              # Jetson Nano / TX1 / TX2: no fast INT8
  python -m export engine BUNDLE --precision int8 --dla-core 0 --workspace 2048   # Xavier / Orin DLA
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``engine``."""
    parser.add_argument("bundle", type=Path, help="bundle directory (calibrated for int8)")
    parser.add_argument(
        "--precision", choices=("auto", "int8", "fp16", "fp32"), default="auto", help="auto: the best this GPU has"
    )
    parser.add_argument("--dla-core", type=int, help="build for this DLA core (Xavier, Orin), GPU fallback on")
    parser.add_argument("--workspace", type=int, default=DEFAULT_WORKSPACE_MB, help="builder workspace limit, MB")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="largest batch of windows")
    add_key_option(parser)
    add_json_flag(parser)


def run(args: argparse.Namespace) -> int:
    """Build and record the engine."""
    signed_before = was_signed(args.bundle)
    bundle = build_engine(
        load_bundle(args.bundle),
        args.precision,
        dla_core=args.dla_core,
        workspace_mb=args.workspace,
        max_batch=args.max_batch,
    )
    engine = bundle.artifacts[-1]
    report = {
        "engine": engine.path,
        "precision": engine.precision,
        "sha256": engine.sha256,
        **engine.record["built_for"],
    }
    print_report(report, as_json=args.json, render=_render)
    signing = after_rewrite(args.bundle, args.key, args.signer, signed_before=signed_before)
    if signing:
        print(signing, file=sys.stderr)
    return 0


def _render(report: dict[str, Any]) -> str:
    return (
        f"built {report['engine']} ({report['precision']}) for {report['gpu_name']} "
        f"(sm {report['compute_capability']}), TensorRT {report['tensorrt_version']}"
    )
