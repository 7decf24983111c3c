"""``python -m export train``: fine-tune a zoo architecture on labelled videos and report validation errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from edge.cli_support import add_json_flag, print_report
from edge.errors import UsageError
from edge.layout import DEFAULT_FRAMES, DEFAULT_SIZE, SUPPORTED_FRAMES
from edge.scale import SCALE_CHOICES, parse_scale
from export.commands.import_onnx import named_output
from export.dataset import LabelledVideo, build_window_set, default_spec, read_labels
from export.train import TrainConfig, further_outputs, select_device, start_model, train
from export.zoo import DEFAULT_ARCHITECTURE, get_architecture, scale_option

NAME = "train"
HELP = "fine-tune a zoo architecture on windows of labelled videos (CSV: video, score, optional group columns)"
EXAMPLES = """\
  python -m export train --labels samples/labels.csv --out runs/demo --epochs 2
  python -m export train --labels phq9/labels.csv --scale phq-9 --out runs/phq9   # PHQ-9 labels, PHQ-9 bundle
  # one model of two outputs: BDI-II labels in 'score', PHQ-9 ones in a 'phq9' column (an empty cell: no label)
  python -m export train --labels both.csv --output bdi_ii:bdi-ii --output phq9:phq-9 --out runs/two
  python -m export train --arch r2plus1d_18 --init r2plus1d_18-91a641e6.pth --labels labels.csv --out runs/r21d
  python -m export train --labels labels.csv --out runs/r2 --epochs 30 --patience 5 --device auto
  python -m export train --labels labels.csv --out runs/r2 --epochs 30 --patience 5 --resume   # after a crash
  python -m export train --labels train/labels.csv --val-labels heldout/labels.csv --out runs/r1 \\
      --size 64 --option stem=16 --option 'widths=[24,48,96]' --group-columns skin_tone,lighting --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``train``."""
    parser.add_argument(
        "--arch", default=DEFAULT_ARCHITECTURE, help=f"zoo architecture (default {DEFAULT_ARCHITECTURE})"
    )
    parser.add_argument("--labels", type=Path, required=True, help="training CSV with columns video, score[, groups]")
    parser.add_argument("--scale", type=parse_scale, default=None, metavar="SCALE",
                        help=f"the labels' scale, which the model's head and its bundle's output take: {SCALE_CHOICES} "
                        "(default BDI-II, or the --init training checkpoint's)")  # fmt: skip
    parser.add_argument("--output", action="append", default=[], type=named_output, metavar="NAME:SCALE",
                        help="a named output of the model (repeatable, the first primary), e.g. --output bdi_ii:bdi-ii "
                        "--output phq9:phq-9: the primary's labels in the CSV's 'score' column, each further "
                        "output's in a column named after it, an empty cell where a video has none")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="run directory for checkpoints and report.json")
    parser.add_argument("--epochs", type=int, default=8, help="passes over the training windows (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the split, initialisation and batches")
    parser.add_argument("--init", type=Path, metavar="CKPT",
                        help="fine-tune from this checkpoint: a state_dict, a Lightning checkpoint, a train "
                        "checkpoint or torchvision (Kinetics) weights; a head of another shape is re-initialised "
                        "(default: random weights)")  # fmt: skip
    val = parser.add_mutually_exclusive_group()
    val.add_argument("--val-fraction", type=float, default=0.2, help="share of identities/videos held out (0.2)")
    val.add_argument("--val-labels", type=Path, help="validation CSV (instead of splitting --labels)")
    parser.add_argument("--group-columns", help="comma-separated CSV columns to break errors down by "
                        "(default: every extra column whose values repeat)")  # fmt: skip
    parser.add_argument("--frames", type=int, choices=SUPPORTED_FRAMES, default=DEFAULT_FRAMES, help="window length")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"mosaic side in pixels ({DEFAULT_SIZE})")
    parser.add_argument("--batch-size", type=int, default=16, help="windows per batch (default 16)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (one-cycle schedule)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=JSON",
                        help="architecture option, e.g. stem=16 or 'widths=[24,48,96]' (repeatable)")  # fmt: skip
    parser.add_argument("--no-augment", action="store_true", help="no photometric jitter of training windows")
    parser.add_argument(
        "--patience",
        type=int,
        metavar="N",
        help="stop after N epochs without a better validation MAE (default: run every epoch)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="carry on from --out/last.pt of an interrupted run with the same settings"
    )
    parser.add_argument("--device", default="auto",
                        help="auto (a CUDA GPU when torch sees one, else the CPU), cpu or cuda[:N]")  # fmt: skip
    add_json_flag(parser)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=JSON`` pairs into a dict (a value that is not JSON is kept as a string)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--option {pair!r} is not KEY=VALUE", fix="write e.g. --option 'widths=[24,48,96]'")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def split_videos(
    videos: list[LabelledVideo], fraction: float, seed: int
) -> tuple[list[LabelledVideo], list[LabelledVideo]]:
    """Hold out ``fraction`` of the identities (``identity`` column) or, without one, of the videos."""
    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--val-fraction {fraction} must lie strictly between 0 and 1", fix="pass e.g. 0.2")
    keys = [v.groups.get("identity", str(v.path)) for v in videos]
    unique = sorted(set(keys))
    if len(unique) < 2:
        raise UsageError("cannot split one identity/video into training and validation", fix="pass --val-labels")
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(unique)[: max(1, round(fraction * len(unique)))].tolist())
    pairs = list(zip(videos, keys, strict=True))
    return [v for v, k in pairs if k not in held], [v for v, k in pairs if k in held]


def _further_val_maes(row: dict[str, Any]) -> str:
    """``  phq9 val MAE 2.31`` for each further output of an epoch's row that had labelled validation windows."""
    outputs = row.get("outputs", {}).items()
    return "".join(f"  {name} val MAE {o['val_mae']:.2f}" for name, o in outputs if o["val_mae"] is not None)


def _render(report: dict[str, Any]) -> str:
    val = report["validation"]
    lines = [f"epoch {row['epoch']}: train MAE {row['train_mae']:.2f}  val MAE {row['val_mae']:.2f}  "
             f"RMSE {row['val_rmse']:.2f}{_further_val_maes(row)}" for row in report["history"]]  # fmt: skip
    lines.append(
        f"best epoch {report['best_epoch']}: val MAE {val['mae']:.2f} RMSE {val['rmse']:.2f} on {val['windows']} "
        f"windows of {val['videos']} videos; baseline (train mean {val['train_mean']:.1f}) "
        f"MAE {val['baseline_mae']:.2f}"
    )
    for column, groups in val["by_group"].items():
        parts = ", ".join(f"{name} {g['mae']:.2f} (n={g['windows']})" for name, g in groups.items())
        lines.append(f"  MAE by {column}: {parts}; gap {val['group_mae_gap'][column]:.2f}")
    for name, other in report.get("outputs", {}).items():
        lines.append(
            f"  output {name} ({other['units']}): val MAE {other['mae']:.2f} RMSE {other['rmse']:.2f} on "
            f"{other['windows']} labelled windows; baseline (train mean {other['train_mean']:.1f}) MAE "
            f"{other['baseline_mae']:.2f}"
            if other["mae"] is not None
            else f"  output {name} ({other['units']}): {other['reason']}"
        )
    if report["stopped_early"]:
        lines.append(f"stopped early after epoch {report['stopped_early']} (--patience)")
    if not report["beats_baseline"]:
        lines.append("WARNING: the best model does NOT beat always predicting the training mean")
    init = report["init"]
    lines.append(
        f"started from {init['file']} (sha256 {init['sha256'][:12]}...)" if init else "started from random weights"
    )
    lines.append(f"checkpoint: {report['checkpoint']} (on {report['device']}; per-epoch log {report['metrics_log']})")
    return "\n".join(lines)


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse impossible numbers before any video is read (cutting windows takes minutes).

    ``--size`` below the architecture's minimum and a bad ``--option`` are refused by the zoo when
    :func:`start_model` builds the model, also before any video is read.
    """
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}", fix=f"pass {flag} 1 or more")
    if args.patience is not None and args.patience < 1:
        raise UsageError(f"--patience must be at least 1, got {args.patience}", fix="pass --patience 3, say")
    if not args.lr > 0.0:
        raise UsageError(f"--lr must be positive, got {args.lr}", fix="pass e.g. --lr 2e-3")


def run(args: argparse.Namespace) -> int:
    """Check options, load the --init checkpoint, read labels, cut windows, train, print and save the report."""
    architecture = get_architecture(args.arch)
    check_arguments(args)
    given = parse_options(args.option)
    if args.scale is not None:
        given["scale"] = args.scale.text
    if args.output:
        if "outputs" in given:
            raise UsageError("--output and --option outputs=... both name outputs", fix="name them with --output alone")
        given["outputs"] = [f"{o.name}:{o.scale.text}" for o in args.output]
    if args.scale is not None and given.get("outputs"):
        raise UsageError("--scale and named outputs both name scales", fix="name every output with --output alone")
    options = architecture.options(given)
    scale, further = scale_option(options), further_outputs(options)
    config = TrainConfig(
        out=args.out, architecture=args.arch, options=options, frames=args.frames, size=args.size,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, augment=not args.no_augment,
        seed=args.seed, init=args.init, patience=args.patience, resume=args.resume, device=args.device,
    )  # fmt: skip
    select_device(args.device)  # a GPU asked for where there is none fails now, before any video is read
    start = start_model(config)  # a wrong --init fails here, before minutes of window cutting
    groups = [c for c in args.group_columns.split(",") if c] if args.group_columns else None
    videos = read_labels(args.labels, groups, scale, further, require_outputs=True)
    if args.val_labels:
        val_videos = read_labels(args.val_labels, list(videos[0].groups), scale, further, require_outputs=True)
        train_videos = videos
    else:
        train_videos, val_videos = split_videos(videos, args.val_fraction, args.seed)
    spec, tiles = default_spec(architecture.layout, frames=args.frames, size=args.size)
    train_set = build_window_set(train_videos, spec, tiles, desc="training windows")
    val_set = build_window_set(val_videos, spec, tiles, desc="validation windows")
    report = train(config, train_set, val_set, spec, start)
    print_report(report, as_json=args.json, render=_render)
    return 0
