"""``python -m export evaluate``: a bundle's error on labelled videos through the device's own pipeline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.bundle import load_bundle
from edge.cli_support import add_json_flag, print_report
from edge.errors import UsageError
from export.dataset import read_labels
from export.evaluate import evaluate_bundle, find_video, write_per_window_csv
from export.evaluate_report import plots_png, render_html

NAME = "evaluate"
HELP = "measure a bundle on labelled videos (CSV: video, score[, groups]) the way the device scores them"
EXAMPLES = """\
  python -m export evaluate edge/assets/demo_bundle --labels samples/labels.csv
  python -m export evaluate bundle/ --labels heldout/labels.csv --precision int8 --group-by skin_tone --json
  python -m export evaluate bundle/ --labels heldout/labels.csv --out eval/ --per-window-csv clip_001.mp4
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``evaluate``."""
    parser.add_argument("bundle", type=Path, help="model bundle directory")
    parser.add_argument("--labels", type=Path, required=True, help="CSV with columns video, score[, group columns]")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8", "auto"), help="model to run (fp32)")
    parser.add_argument("--backend", default="onnxruntime", help="edge backend: onnxruntime (default), tensorrt, auto")
    parser.add_argument("--group-by", action="append", metavar="COL",
                        help="break errors down by this CSV column (repeatable; default: every extra column whose "
                        "values repeat)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    parser.add_argument("--out", type=Path, help="directory for evaluation.json and evaluation.html (the plots)")
    parser.add_argument("--per-window-csv", metavar="VIDEO",
                        help="also write every window's score of this one video to --out (engineer's machine only: "
                        "these are one person's window scores, which a device never writes)")  # fmt: skip
    add_json_flag(parser)


def _interval(metrics: dict[str, Any], name: str) -> str:
    value, interval = metrics[name], metrics[f"{name}_ci"]
    if value is None:
        return f"{name} n/a"
    return f"{name} {value:.2f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else " [n/a]")


def render(report: dict[str, Any]) -> str:
    """The report as lines for people."""
    units, base = report["units"], report["baseline"]
    lines = [
        f"model        {report['model']} on {report['videos']['scored']}/{report['videos']['labelled']} videos, "
        f"{report['windows']['scored']} windows ({report['units']}; a video = mean of its windows)",
        f"rejected     {report['windows']['rejected']} windows "
        + (json.dumps(report["windows"]["rejected_by_reason"]) if report["windows"]["rejected"] else ""),
    ]
    for label, metrics in (("model", report["model_metrics"]), ("baseline", base)):
        figures = ", ".join(_interval(metrics, name) for name in ("mae", "rmse", "pearson_r", "ccc"))
        lines.append(f"{label:<12} {figures}, bias {metrics['bias']:+.2f} {units}")
    lines.append(f"baseline     constant {base['value']:.2f}: {base['source']}")
    if report["caution"]:
        lines.append(f"CAUTION: {report['caution']}")
    if not report["beats_baseline"]:
        lines.append("WARNING: the model does NOT beat the constant baseline on these videos")
    limits = report["bland_altman"]["limits"]
    if limits:
        lines.append(f"agreement    95% limits (predicted - true) {limits[0]:+.2f} to {limits[1]:+.2f} {units}")
    for band, row in (report["bands"] or {}).items():
        lines.append(f"band {band:<8}{row['videos']} videos, MAE {row['mae']:.2f}, bias {row['bias']:+.2f}")
    for column, section in report["groups"].items():
        parts = ", ".join(f"{value} {row['mae']:.2f} (n={row['videos']})" for value, row in section["values"].items())
        lines.append(f"MAE by {column}: {parts}; gap {section['mae_gap']:.2f}")
    for output in report.get("outputs", []):  # a bundle's further outputs, each in its own units
        if not output["evaluated"]:
            lines.append(f"output {output['output']}: not evaluated: {output['reason']}")
            continue
        figures = ", ".join(_interval(output["model_metrics"], name) for name in ("mae", "rmse", "pearson_r", "ccc"))
        verdict = "" if output["beats_baseline"] else "; does NOT beat the constant baseline"
        lines.append(f"output {output['output']} ({output['units']}): {figures}, baseline MAE "
                     f"{output['baseline']['mae']:.2f}{verdict}")  # fmt: skip
    lines += [f"wrote        {path}" for path in report.get("written", [])]
    lines.append(report["notice"])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Evaluate, write the report files asked for and print the figures."""
    if args.per_window_csv and args.out is None:
        raise UsageError("--per-window-csv needs --out", fix="pass --out DIR for the CSV to go into")
    bundle = load_bundle(args.bundle)
    if args.per_window_csv:  # a wrong name fails now, not after minutes of window cutting
        find_video(read_labels(args.labels, args.group_by), args.per_window_csv)
    result = evaluate_bundle(
        bundle, args.labels, group_by=args.group_by, backend=args.backend, precision=args.precision, seed=args.seed
    )
    report = result.report
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        written = [args.out / "evaluation.json", args.out / "evaluation.html"]
        if args.per_window_csv:
            video = find_video(result.data.videos, args.per_window_csv)
            csv_path = args.out / f"windows_{result.data.videos[video].path.stem}.csv"
            write_per_window_csv(csv_path, result.data, result.scores, video)
            written.append(csv_path)
        report["written"] = [str(path) for path in written]
        written[0].write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        written[1].write_text(render_html(report, *plots_png(result.truth, result.predicted, report)), "utf-8")
    print_report(report, as_json=args.json, render=render)
    return 0
