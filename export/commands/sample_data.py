"""``python -m export sample-data``: render synthetic talking-head videos and their labels CSV."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from edge.cli_support import add_json_flag, print_report
from edge.errors import UsageError
from edge.scale import BDI_II, SCALE_CHOICES, parse_scale
from export.commands.import_onnx import named_output
from export.synthetic.behaviour import SIGNAL_REGIONS
from export.synthetic.catalogue import SPLITS, clip_specs, write_split

NAME = "sample-data"
HELP = "render synthetic talking-head videos whose behaviour follows a latent BDI-II label, plus labels.csv"
EXAMPLES = """\
  python -m export sample-data --out samples/                      # the 3 committed demo videos
  python -m export sample-data --out /tmp/train --split train --count 60 --seed 0
  python -m export sample-data --out /tmp/heldout --split heldout --count 16
  python -m export sample-data --out /tmp/phq9 --split train --count 24 --scale phq-9   # PHQ-9 labels
  python -m export sample-data --out /tmp/both --split train --count 24 --also-output phq9:phq-9   # + a phq9 column
  python -m export sample-data --out /tmp/mouth --split train --count 24 --signal-regions mouth   # planted
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``sample-data``."""
    parser.add_argument("--out", type=Path, required=True, help="directory for the videos and labels.csv")
    parser.add_argument("--split", choices=SPLITS, default="demo", help="which identities and lighting (default demo)")
    parser.add_argument("--count", type=int, default=3, help="number of videos (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed: the same seed gives the same frames (default 0)")
    parser.add_argument("--seconds", type=float, help="clip length (default 12 s for demo, 10 s otherwise)")
    parser.add_argument("--fps", type=float, help="frame rate (default 15 for demo, 8 otherwise)")
    parser.add_argument(
        "--signal-regions",
        default=",".join(SIGNAL_REGIONS),
        help=f"comma-separated regions whose behaviour follows the label, the others stay neutral "
        f"(default all: {','.join(SIGNAL_REGIONS)}); checks that explanations find a planted signal",
    )
    parser.add_argument("--scale", type=parse_scale, default=BDI_II, metavar="SCALE",
                        help=f"scale of labels.csv: {SCALE_CHOICES} (default BDI-II, the latent itself; other scales "
                        "map it keeping each clip's severity band, see export/synthetic/README.md)")  # fmt: skip
    parser.add_argument("--also-output", action="append", default=[], type=named_output, metavar="NAME:SCALE",
                        help="also write the labels of a model's further output: a column NAME holding the latent on "
                        "SCALE, mapped as for --scale (repeatable), e.g. phq9:phq-9 for train --output")  # fmt: skip
    add_json_flag(parser)


def _render(report: dict[str, Any]) -> str:
    return (
        f"wrote {len(report['videos'])} videos ({report['bytes'] / 1e6:.1f} MB) and {report['labels']} "
        f"in {report['seconds']:.0f} s"
    )


def run(args: argparse.Namespace) -> int:
    """Render the split and print where it went."""
    if args.count < 1:
        raise UsageError(f"--count {args.count} makes no videos", fix="pass --count 1 or more")
    signal = tuple(name.strip() for name in args.signal_regions.split(",") if name.strip())
    specs = clip_specs(args.split, args.count, seed=args.seed, seconds=args.seconds, fps=args.fps, signal=signal)
    started = time.perf_counter()
    labels = write_split(specs, args.out, scale=args.scale, also=args.also_output)
    videos = sorted(args.out.glob("*.mp4"))
    report = {
        "split": args.split,
        "seed": args.seed,
        "signal_regions": list(signal),
        "scale": args.scale.text,
        "also_outputs": [f"{o.name}:{o.scale.text}" for o in args.also_output],
        "labels": str(labels),
        "videos": [video.name for video in videos],
        "bytes": sum(video.stat().st_size for video in videos),
        "seconds": round(time.perf_counter() - started, 2),
    }
    print_report(report, as_json=args.json, render=_render)
    return 0
