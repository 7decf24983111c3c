"""How far INT8 drifts from FP32: output metrics, severity-band agreement, the layers that err most, plots.

Everything here is aggregate (errors, counts, histograms): no window, crop or score of one person is written.
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.scale import BDI_II, Scale


def severity_bands(scores: npt.ArrayLike, scale: Scale) -> npt.NDArray[np.str_]:
    """The band name of each score on ``scale`` (edge.scale's band rule)."""
    return np.array(scale.band_names_of(scores), dtype=np.str_)


def compare(reference: npt.ArrayLike, candidate: npt.ArrayLike, scale: Scale) -> dict[str, float | None]:
    """MAE, RMSE, max and 95th-percentile absolute error of ``candidate`` against ``reference``, and the MAE as a
    share of the output range, plus how often both fall in the same band of ``scale`` (None: it has no bands)."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    diff = np.abs(cand - ref)
    return {
        "mae": float(diff.mean()),
        "rmse": float(np.sqrt((diff**2).mean())),
        "max_abs": float(diff.max()),
        "p95_abs": float(np.percentile(diff, 95)),
        "mae_share_of_range": float(diff.mean() / scale.span),
        "band_agreement": float((severity_bands(ref, scale) == severity_bands(cand, scale)).mean())
        if scale.bands
        else None,
    }


def accuracy_section(
    fp32: npt.ArrayLike, quantized: Mapping[str, npt.ArrayLike], labels: npt.ArrayLike | None, scale: Scale
) -> dict[str, Any]:
    """Each quantized model against FP32, and every model against labels where some windows have one."""
    section: dict[str, Any] = {"windows": int(np.asarray(fp32).size), "against_fp32": {}, "against_labels": None}
    for name, scores in quantized.items():
        section["against_fp32"][name] = compare(fp32, scores, scale)
    label_array = None if labels is None else np.asarray(labels, dtype=np.float64)
    if label_array is not None and np.isfinite(label_array).any():
        known = np.isfinite(label_array)
        models = {"fp32": fp32, **quantized}
        section["against_labels"] = {
            "windows": int(known.sum()),
            **{name: compare(label_array[known], np.asarray(s)[known], scale) for name, s in models.items()},
        }
    return section


def layer_errors(
    fp32_model: Path, int8_model: Path, batches: Sequence[npt.NDArray[np.float32]], *, top: int = 10
) -> tuple[list[dict[str, Any]], dict[str, npt.NDArray[np.float32]]]:
    """The ``top`` tensors whose INT8 values differ most from FP32 (lowest signal-to-quantization-noise ratio),
    and the FP32 values of every compared tensor (for histograms)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    from calibration.quantize import BatchReader, input_name

    name = input_name(fp32_model)
    with tempfile.TemporaryDirectory(prefix="expresso-layers-") as tmp:
        float_aug, int8_aug = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        modify_model_output_intermediate_tensors(str(fp32_model), str(float_aug))
        modify_model_output_intermediate_tensors(str(int8_model), str(int8_aug))
        float_acts = collect_activations(str(float_aug), BatchReader(name, batches))
        int8_acts = collect_activations(str(int8_aug), BatchReader(name, batches))
    errors = compute_activation_error(create_activation_matching(int8_acts, float_acts))
    ranked = sorted((float(e["xmodel_err"]), t) for t, e in errors.items() if "xmodel_err" in e)
    values = {t: np.concatenate([a.ravel() for a in float_acts[t]]) for t in errors if t in float_acts}
    return [{"tensor": t, "sqnr_db": sqnr} for sqnr, t in ranked[:top]], values


def histograms_png(items: Sequence[tuple[str, npt.NDArray[np.float32], float, float]]) -> str:
    """One base64 PNG with a histogram per ``(tensor, FP32 values, low, high)``, the calibrated range marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    rows = max(1, (len(items) + 1) // 2)
    figure, grid = plt.subplots(rows, 2, figsize=(8.4, 2.2 * rows), dpi=80, squeeze=False)
    for axes, (title, values, low, high) in zip(grid.ravel(), items, strict=False):
        amax = max(abs(low), abs(high))
        counts, edges = np.histogram(
            values, bins=100, range=(min(low, -amax, float(values.min())), max(amax, float(values.max())))
        )
        axes.stairs(np.log10(counts + 1.0), edges, fill=True, color="#4c72b0")
        axes.axvspan(low, high, color="#55a868", alpha=0.15, label="calibrated range")
        axes.axvline(-amax, color="#c44e52", linestyle=":", linewidth=1, label="±amax (TensorRT)")
        axes.axvline(amax, color="#c44e52", linestyle=":", linewidth=1)
        axes.set_title(title[:60], fontsize=8)
        axes.set_ylabel("log10(count+1)", fontsize=7)
        axes.tick_params(labelsize=7)
    for axes in grid.ravel()[len(items) :]:
        axes.set_visible(False)
    grid.ravel()[0].legend(fontsize=6)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.93, bottom=0.06, hspace=0.5, wspace=0.25)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def render_html(report: dict[str, Any], histograms: str | None) -> str:
    """A small self-contained HTML page: the figures, the worst layers and the histograms."""
    from edge import NOT_A_DIAGNOSTIC_DEVICE

    rows = []
    for name, metrics in report["accuracy"]["against_fp32"].items():
        cells = "".join(
            "<td>-</td>" if metrics[k] is None else f"<td>{metrics[k]:.4g}</td>"
            for k in ("mae", "rmse", "max_abs", "band_agreement")
        )
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    layers = "".join(
        f"<tr><td><code>{html.escape(row['tensor'])}</code></td><td>{row['sqnr_db']:.1f}</td></tr>"
        for row in report.get("layers", [])
    )
    images = f'<img alt="activation histograms" src="data:image/png;base64,{histograms}">' if histograms else ""
    gate = report["gate"]
    units = html.escape(gate.get("units", BDI_II.name))  # reports written before scales were named are BDI-II
    verdict = "pass" if gate["passed"] else "FAIL"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>INT8 calibration report</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:auto}}td,th{{padding:2px 8px;text-align:right}}
figure{{display:inline-block;margin:4px}}</style></head><body>
<h1>INT8 calibration report: {html.escape(report["model"])}</h1>
<p><em>{html.escape(NOT_A_DIAGNOSTIC_DEVICE)}</em></p>
<p>Method <b>{html.escape(report["method"])}</b>, {report["windows"]["calibration"]} calibration windows,
{report["windows"]["held_out"]} held-out windows. Gate: MAE against FP32 of every INT8 model at most
{gate["max_delta"]:.3g} {units} points; measured {gate["measured_delta"]:.3g}: <b>{verdict}</b>.</p>
<h2>Held-out windows, INT8 against FP32 ({units} points)</h2>
<table><tr><th></th><th>MAE</th><th>RMSE</th><th>max</th><th>band agreement</th></tr>{"".join(rows)}</table>
<h2>Tensors with the largest error (onnxruntime-cpu model)</h2>
<table><tr><th>tensor</th><th>SQNR against FP32 (dB; lower = larger error)</th></tr>{layers}</table>
<h2>FP32 activation histograms with the calibrated ranges</h2>{images}
</body></html>
"""
