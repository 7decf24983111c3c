"""The evaluation as a self-contained HTML page: the figures, a scatter and a Bland-Altman plot (PNG, embedded)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
import numpy.typing as npt


def _png(figure: Any) -> str:
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plots_png(
    truth: npt.NDArray[np.float64], predicted: npt.NDArray[np.float64], report: dict[str, Any]
) -> tuple[str, str]:
    """Base64 PNGs: predicted against true per video (identity line, baseline), and Bland-Altman."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    low, high = report["range"]
    units = report["units"]
    figure, axes = plt.subplots(figsize=(4.6, 4.2), dpi=90)
    axes.plot([low, high], [low, high], color="#888888", linewidth=1, label="perfect agreement")
    axes.axhline(report["baseline"]["value"], color="#c44e52", linestyle=":", linewidth=1, label="constant baseline")
    axes.scatter(truth, predicted, color="#4c72b0", s=24, label="video (mean of its windows)")
    axes.set(xlim=(low, high), ylim=(low, high), xlabel=f"true score ({units})", ylabel=f"predicted ({units})")
    axes.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    scatter = _png(figure)

    agreement = report["bland_altman"]
    figure, axes = plt.subplots(figsize=(4.6, 4.2), dpi=90)
    axes.scatter((truth + predicted) / 2, predicted - truth, color="#4c72b0", s=24)
    axes.axhline(0.0, color="#888888", linewidth=1)
    if agreement["bias"] is not None:
        axes.axhline(agreement["bias"], color="#55a868", linewidth=1.2, label=f"bias {agreement['bias']:+.2f}")
    for limit in agreement["limits"] or []:
        axes.axhline(limit, color="#c44e52", linestyle="--", linewidth=1, label=f"95% limit {limit:+.2f}")
    axes.set(xlabel=f"mean of true and predicted ({units})", ylabel=f"predicted - true ({units})")
    axes.legend(fontsize=7)
    figure.tight_layout()
    return scatter, _png(figure)


def _figure(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" + (f" [{interval[0]:.3g}, {interval[1]:.3g}]" if interval else " [n/a]")


def _metrics_rows(report: dict[str, Any]) -> str:
    rows = []
    for label, metrics in (("model", report["model_metrics"]), ("constant baseline", report["baseline"])):
        cells = "".join(
            f"<td>{_figure(metrics[name], metrics[f'{name}_ci'])}</td>" for name in ("mae", "rmse", "pearson_r", "ccc")
        )
        rows.append(f"<tr><th>{label}</th>{cells}<td>{metrics['bias']:+.3g}</td></tr>")
    return "".join(rows)


def _breakdown_rows(title: str, rows: dict[str, dict[str, Any]]) -> str:
    return "".join(
        f"<tr><th>{html.escape(title)}</th><td>{html.escape(name)}</td><td>{row['videos']}</td>"
        f"<td>{row['mae']:.3g}</td><td>{row['bias']:+.3g}</td><td>{row['baseline_mae']:.3g}</td></tr>"
        for name, row in rows.items()
    )


def render_html(report: dict[str, Any], scatter: str, bland_altman: str) -> str:
    """One page with every figure of ``report`` and the two plots."""
    units = html.escape(report["units"])
    groups = "".join(_breakdown_rows(f"{column}", section["values"]) for column, section in report["groups"].items())
    bands = _breakdown_rows("severity band (true)", report["bands"]) if report["bands"] else ""
    rejected = ", ".join(f"{html.escape(k)} {v}" for k, v in report["windows"]["rejected_by_reason"].items())
    verdict = "beats" if report["beats_baseline"] else "does NOT beat"
    name = html.escape(report["model"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Evaluation: {name}</title>
<style>body{{font-family:sans-serif;max-width:62em;margin:auto}}td,th{{padding:2px 8px;text-align:right}}</style>
</head><body>
<h1>Evaluation of {name}</h1>
<p><em>{html.escape(report["notice"])}</em></p>
<p>{report["videos"]["scored"]} of {report["videos"]["labelled"]} labelled videos scored from
{report["windows"]["scored"]} windows; {report["windows"]["rejected"]} windows refused by the quality gate
({rejected or "none"}). {html.escape(report["aggregation"])}. The model <b>{verdict}</b> the constant baseline
{report["baseline"]["value"]:.3g} ({html.escape(report["baseline"]["source"])}).</p>
<h2>Per-video agreement ({units}; bootstrap 95% intervals over videos)</h2>
<table><tr><th></th><th>MAE</th><th>RMSE</th><th>Pearson r</th><th>CCC</th><th>bias</th></tr>
{_metrics_rows(report)}</table>
<h2>Breakdown</h2>
<table><tr><th></th><th></th><th>videos</th><th>MAE</th><th>bias</th><th>baseline MAE</th></tr>{bands}{groups}</table>
<h2>Plots</h2>
<img alt="predicted against true score per video" src="data:image/png;base64,{scatter}">
<img alt="Bland-Altman plot" src="data:image/png;base64,{bland_altman}">
</body></html>
"""
