"""``python -m calibration collect``: build a calibration set from videos through the device's face pipeline."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from calibration.collect import (
    PRIVACY_NOTE,
    collect_live,
    collect_videos,
    manifest_digest,
    spec_and_tiles,
    write_set,
)
from edge.bundle import load_bundle
from edge.cli_support import add_json_flag, print_report
from edge.errors import InputError, UsageError

NAME = "collect"
HELP = "build an INT8 calibration set (face-crop windows) from videos or a camera, with the device's preprocessing"
EXAMPLES = """\
  python -m calibration collect samples/*.mp4 --bundle edge/assets/demo_bundle --out /tmp/calib
  python -m calibration collect clips/*.mp4 --labels clips/labels.csv --max-windows 400 --out ~/calib-set
  python -m calibration collect --camera /dev/video0 --seconds 300 --bundle bundle/ --out ~/calib-set
  (the set holds face crops: keep it on this machine, never in a bundle or a repository)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``collect``."""
    parser.add_argument("videos", nargs="*", type=Path, help="video files with one face each")
    parser.add_argument(
        "--camera", metavar="SOURCE", help="capture a camera instead: index, /dev/videoN, GStreamer pipeline or URL"
    )
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to capture with --camera")
    parser.add_argument("--out", type=Path, required=True, help="directory for the set (created)")
    parser.add_argument("--bundle", type=Path, help="bundle whose window shape and mosaic to use (default: defaults)")
    parser.add_argument("--max-windows", type=int, default=512, help="most windows kept, spread over videos")
    parser.add_argument(
        "--labels",
        type=Path,
        action="append",
        help="CSV with columns video,score (on the bundle's scale) for the report (repeatable)",
    )
    add_json_flag(parser)


def read_labels(path: Path) -> dict[str, float]:
    """``{video file name: score}`` from a CSV with ``video`` and ``score`` columns."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"video", "score"} <= set(rows[0]):
        raise InputError(f"{path} needs columns 'video' and 'score'", fix="pass the labels.csv written with the videos")
    return {Path(row["video"]).name: float(row["score"]) for row in rows}


def _render(summary: dict[str, Any]) -> str:
    rejected = ", ".join(f"{k} {v}" for k, v in summary["rejected"].items()) or "none"
    return (
        f"calibration set: {summary['windows']} windows from {summary['sources']} sources "
        f"({summary['labelled_windows']} labelled); rejected: {rejected}"
    )


def run(args: argparse.Namespace) -> int:
    """Collect, write and summarise the set."""
    if args.max_windows < 1:
        raise InputError(f"--max-windows {args.max_windows} must be at least 1", fix="pass e.g. 512")
    bundle = load_bundle(args.bundle) if args.bundle else None
    spec, tiles = spec_and_tiles(bundle)
    labels = {name: score for path in args.labels or [] for name, score in read_labels(path).items()}
    print(f"note: {PRIVACY_NOTE}", file=sys.stderr)
    if bool(args.videos) == bool(args.camera):
        raise UsageError("pass video files or --camera SOURCE, not both and not neither", fix="see --help")
    if args.camera:
        collected = collect_live(args.camera, spec, tiles, seconds=args.seconds, max_windows=args.max_windows)
    else:
        collected = collect_videos(args.videos, spec, tiles, max_windows=args.max_windows, labels=labels)
    summary = write_set(args.out, collected, spec, tiles, manifest_sha256=manifest_digest(bundle))
    print_report(summary, as_json=args.json, render=_render)
    print(f"wrote {args.out} (face crops: keep it on this machine; never put it in a bundle)", file=sys.stderr)
    return 0
