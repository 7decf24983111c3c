"""``python -m export explain MODEL VIDEO...``: which face regions and which moments drive a model's scores."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.cli_support import add_json_flag, print_report
from edge.errors import InputError, UsageError
from edge.scale import NamedScale
from export.explain.methods import METHODS

NAME = "explain"
HELP = "attribute a model's scores on videos to face regions and moments: region shares, curves, HTML report"
EXAMPLES = """\
  python -m export explain edge/assets/demo_bundle samples/*.mp4 --out /tmp/explain --json   # occlusion
  python -m export explain edge/assets/demo_bundle samples/*.mp4 --out /tmp/explain \\
      --checkpoint export/assets/demo_checkpoint.pt                                       # DeepLift
  python -m export explain run/best.pt videos/*.mp4 --out /tmp/explain --method integrated-gradients
  python -m export explain bundle/ videos/*.mp4 --out /tmp/explain --labels videos/labels.csv  # bands by label
  python -m export explain two_outputs/ videos/*.mp4 --out /tmp/explain --output phq9  # a further output
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``explain``."""
    parser.add_argument("model", type=Path, help="bundle directory, or a checkpoint written by python -m export train")
    parser.add_argument("videos", type=Path, nargs="+", help="videos to explain")
    parser.add_argument("--out", type=Path, required=True, help="directory for explanations.json, PNGs, report.html")
    parser.add_argument(
        "--method",
        choices=METHODS,
        help="attribution method (default: deeplift with PyTorch weights, occlusion for a bundle alone)",
    )
    parser.add_argument("--checkpoint", type=Path, help="the checkpoint a bundle MODEL was exported from")
    parser.add_argument(
        "--output",
        metavar="NAME",
        help="the output to explain, for a model of several (default: the primary one); its labels in --labels are "
        "the column named after it",
    )
    parser.add_argument("--labels", type=Path, help="labels CSV (video,score): severity bands by label, not by score")
    parser.add_argument("--backend", default="auto", help="backend for occlusion on a bundle (default auto)")
    add_json_flag(parser)


def _labels(path: Path | None, outputs: Sequence[NamedScale], index: int) -> dict[str, float]:
    """Each video's label for output ``index``: ``score`` for the primary, the column named after a further one
    (as ``train`` and ``evaluate`` read them; an empty cell is no label)."""
    from export.dataset import read_labels

    if path is None:
        return {}
    chosen = outputs[index : index + 1] if index else ()
    videos = read_labels(path, scale=outputs[0].scale, outputs=chosen, require_outputs=True)
    labels = {video.path.name: video.further[outputs[index].name] if index else video.score for video in videos}
    return {name: label for name, label in labels.items() if label is not None}


def _render(report: dict[str, Any]) -> str:
    lines = [
        f"explained output {report['output']} of {len(report['videos'])} videos with {report['method']}; "
        f"report: {report['report']}"
    ]
    for video in report["videos"]:
        ranked = sorted(video["regions"].items(), key=lambda item: -item[1])
        shares = ", ".join(f"{name} {100 * share:.0f}%" for name, share in ranked)
        lines.append(f"  {video['video']}: score {video['score']:.1f}, {video['windows']} windows; {shares}")
    lines.append(NOT_A_DIAGNOSTIC_DEVICE)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Explain every video, write the files, print each video's region shares and correlations."""
    from export.explain.face_map import face_heatmap
    from export.explain.model import model_outputs, open_method, output_index
    from export.explain.report import curve_plot, render_html
    from export.explain.summary import document
    from export.explain.video import explain_video

    missing = [str(v) for v in args.videos if not v.is_file()]
    if missing:
        raise InputError(f"video(s) {', '.join(missing)} do not exist", fix="check the paths")
    names = [v.name for v in args.videos]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # labels, pictures and report rows are keyed by the file name
        raise UsageError(
            f"more than one video is named {', '.join(repeated)}",
            fix="give each video its own file name, or explain them in separate runs with their own --out",
        )
    outputs = model_outputs(args.model)
    index = output_index(outputs, args.output, args.model)
    output = outputs[index]
    labels = _labels(args.labels, outputs, index)
    method = open_method(args.model, checkpoint=args.checkpoint, method=args.method, backend=args.backend, output=index)
    results = []
    windows = 0  # beside the bar: a long video moves the bar only when it ends

    def count_window(step: int) -> None:
        nonlocal windows
        windows += step
        bar.set_postfix(video=video.name, windows=windows, refresh=False)

    with tqdm(args.videos, unit="video", desc=f"explain ({method.name})", leave=False) as bar:
        for video in bar:
            result = explain_video(video, method, label=labels.get(video.name), progress=count_window)
            if not result.windows:
                raise InputError(f"video {video} gave no scored window", fix="check it shows one face, long enough")
            results.append(result)
    if args.labels is not None and any(r.label is None for r in results):
        unlabelled = [r.video for r in results if r.label is None]
        raise UsageError(
            f"{args.labels} has no label for {', '.join(unlabelled)}", fix="add their rows, or fill their empty cells"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    full = document(results, method=method.name, model=str(args.model), per_window=True, output=output)
    (args.out / "explanations.json").write_text(json.dumps(full, indent=1))
    images: dict[str, list[str]] = {"region shares per video": [], "per-frame curves": [], "per band": []}
    for result, section in zip(results, full["videos"], strict=True):
        stem = Path(result.video).stem
        title = f"{stem}: score {section['score']:.1f}"
        images["region shares per video"].append(
            face_heatmap(section["regions"], method.tiles, args.out / f"{stem}.regions.png", title).name
        )
        images["per-frame curves"].append(curve_plot(result, args.out / f"{stem}.curve.png").name)
    for band, section in full["bands"].items():
        images["per band"].append(
            face_heatmap(section["regions"], method.tiles, args.out / f"band_{band}.png", f"band {band}").name
        )
    (args.out / "report.html").write_text(render_html(full, images))
    brief = document(results, method=method.name, model=str(args.model), per_window=False, output=output)
    print_report({**brief, "report": str(args.out / "report.html")}, as_json=args.json, render=_render)
    return 0
