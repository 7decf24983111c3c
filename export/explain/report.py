"""Pictures and the HTML report of an explanation: per-frame curves with the descriptors, per-video and per-band
tables (region shares are drawn on a canonical face by :mod:`export.explain.face_map`, never on the person's face
or crops)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from edge.face.descriptors import DESCRIPTORS
from export.explain.video import VideoResult


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def curve_plot(result: VideoResult, path: Path) -> Path:
    """A PNG of the per-frame attribution curve over the video, with each descriptor (z-scored) beneath."""
    plt = pyplot()
    times, curve = result.curve()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    top.plot(times, curve, color="black")
    top.set_ylabel("attribution")
    top.set_title(f"{result.video}: per-frame attribution and behaviour descriptors", fontsize=9)
    for i, name in enumerate(DESCRIPTORS):
        values = result.descriptors[:, i]
        spread = np.nanstd(values) if np.isfinite(values).sum() > 1 else 0.0
        if spread > 0:
            bottom.plot(result.frame_times, (values - np.nanmean(values)) / spread, lw=0.8, label=name)
    bottom.set_ylabel("descriptor (z)")
    bottom.set_xlabel("seconds")
    bottom.legend(fontsize=6, ncol=3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _table(rows: list[list[str]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _group_table(groups: dict[str, Any], kind: str, regions: list[str], descriptors: list[str]) -> str:
    """A table of video groups (severity bands, prediction errors): videos, region shares (%), correlations."""
    return _table(
        [
            [name, str(group["videos"])]
            + [f"{100 * group['regions'][r]:.0f}" for r in regions]
            + [_number(group["correlations"][d]) for d in descriptors]
            for name, group in groups.items()
        ],
        [kind, "videos", *regions, *descriptors],
    )


def render_html(doc: dict[str, Any], images: dict[str, list[str]]) -> str:
    """One HTML page: per-video and per-band region shares and correlations, the pictures, the caveats."""
    regions = list(doc["videos"][0]["regions"]) if doc["videos"] else []
    parts = [
        "<!doctype html><meta charset='utf-8'><title>expresso-edge explanations</title>",
        "<style>body{font-family:sans-serif;max-width:1100px}td,th{padding:2px 8px;text-align:right}"
        "img{margin:4px}</style>",
        f"<h1>Explanations: {html.escape(doc['model'])}, output {html.escape(doc['output'])}"
        f" ({html.escape(doc['scale'])}), method {html.escape(doc['method'])}</h1>",
        f"<p><b>{html.escape(doc['disclaimer'])}</b></p><p>{html.escape(doc['caveat'])}</p>",
        "<h2>Per video: region shares (%)</h2>",
        _table(
            [
                [v["video"], f"{v['score']:.1f}", v["band"], v["top_region"]]
                + [f"{100 * v['regions'][r]:.0f}" for r in regions]
                for v in doc["videos"]
            ],
            ["video", "score", "band", "top", *regions],
        ),
        "<h2>Per video: Spearman of the attribution curve with each descriptor</h2>",
        _table(
            [[v["video"]] + [_number(v["correlations"][d]) for d in doc["descriptors"]] for v in doc["videos"]],
            ["video", *doc["descriptors"]],
        ),
        f"<h2>Per severity band (by {html.escape(doc['band_by'])})</h2>",
        _group_table(doc["bands"], "band", regions, doc["descriptors"]),
    ]
    if doc.get("predictions"):
        parts += [
            f"<h2>Per prediction: correct (within {doc['error_tolerance']:g} points of the label), under- or "
            "over-estimated</h2>",
            _group_table(doc["predictions"], "prediction", regions, doc["descriptors"]),
        ]
    for title, files in images.items():
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts += [f"<img src='{html.escape(name)}' alt='{html.escape(title)}'>" for name in files]
    return "\n".join(parts)
