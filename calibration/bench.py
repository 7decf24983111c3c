"""FP32 against INT8 on ONNX Runtime's CPU in one run: latency, accuracy delta, onnxruntime's default
``quantize_static`` as the accuracy baseline, and achieved ops/s as a share of the CPU's INT8 peak.

``python -m export bench`` measures every backend and precision; :func:`int8_section` turns its ONNX Runtime
FP32/INT8 results into this comparison.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from calibration.dataset import load_set
from calibration.pipeline import fp32_model, run_scores
from calibration.quantize import quantize_default
from calibration.report import compare
from edge.bundle import Bundle

INT8_PEAK_GMACS = 589.0
"""INT8 multiply-accumulates per second (G) of the 2-core AVX512-VNNI machine in FIELD-NOTES; pass your own."""
TARGET_SPEEDUP = 2.5
TARGET_DELTA_SHARE = 0.01


def _baseline_latency(model: Path, batch: npt.NDArray[np.float32], runs: int, threads: int) -> float:
    """Median ms per window of a plain ONNX Runtime session (the baseline model is not in the bundle)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(2):
        session.run(None, {name: batch})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: batch})
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / len(batch)


def _accuracy(bundle: Bundle, calib: Path, baseline: Path) -> dict[str, Any]:
    """FP32, the bundle's INT8 and the default-quantized baseline on the set's held-out windows."""
    cset = load_set(calib)
    cset.check_fits(bundle.input, bundle.tiles)
    calib_idx, held_idx = cset.split(0.25)
    source = fp32_model(bundle)
    quantize_default(source, baseline, list(cset.batches(calib_idx, bundle.input)))
    int8 = bundle.find("onnx", precision="int8", target="onnxruntime-cpu")
    assert int8 is not None
    fp32 = run_scores(source, cset.batches(held_idx, bundle.input))
    span = bundle.output.span
    return {
        "held_out_windows": len(held_idx),
        "int8": compare(fp32, run_scores(bundle.path_of(int8), cset.batches(held_idx, bundle.input)), span),
        "quantize_static_defaults": compare(fp32, run_scores(baseline, cset.batches(held_idx, bundle.input)), span),
    }


def _pair(results: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """ONNX Runtime's FP32 and INT8 results at the largest thread count measured for both."""
    found = {(r["precision"], r["threads"]): r for r in results if r["backend"] == "onnxruntime"}
    common = [t for (p, t) in found if p == "int8" and ("fp32", t) in found]
    return (found[("fp32", max(common))], found[("int8", max(common))]) if common else None


def int8_section(
    bundle: Bundle,
    results: list[dict[str, Any]],
    batch: npt.NDArray[np.float32],
    *,
    calib: Path | None = None,
    runs: int = 20,
    peak_int8_gmacs: float = INT8_PEAK_GMACS,
) -> dict[str, Any] | None:
    """FP32 against INT8 from ``python -m export bench`` results, with accuracy and the CPU-peak share.

    With ``calib`` (a calibration set) the accuracy is measured on its held-out windows, side by side with
    onnxruntime's ``quantize_static`` defaults; without it the manifest's recorded delta is reported.
    """
    pair = _pair(results)
    if pair is None:
        return None
    fp32, int8 = pair
    span = bundle.output.span
    section: dict[str, Any] = {
        "threads": int8["threads"],
        "median_ms_per_window": {"fp32": fp32["median_ms_per_window"], "int8": int8["median_ms_per_window"]},
        "speedup": fp32["median_ms_per_window"] / int8["median_ms_per_window"],
        "int8_gmac_per_s": int8["gmac_per_s"],
        "int8_peak_gmac_per_s": peak_int8_gmacs,
        "int8_share_of_peak": int8["gmac_per_s"] / peak_int8_gmacs,
    }
    if calib is not None:
        with tempfile.TemporaryDirectory(prefix="expresso-bench-") as tmp:
            baseline = Path(tmp) / "baseline.onnx"
            section["accuracy"] = _accuracy(bundle, calib, baseline)
            section["median_ms_per_window"]["quantize_static_defaults"] = _baseline_latency(
                baseline, batch, runs, int8["threads"]
            )
        delta = section["accuracy"]["int8"]["mae"]
    else:
        recorded = bundle.manifest.get("calibration") or {}
        delta = recorded.get("measured_delta")
        section["accuracy"] = {"recorded_in_manifest": recorded.get("delta_metric"), "int8": {"mae": delta}}
    section["targets"] = {
        "speedup_at_least": TARGET_SPEEDUP,
        "speedup_met": section["speedup"] >= TARGET_SPEEDUP,
        "delta_at_most": TARGET_DELTA_SHARE * span,
        "delta_met": None if delta is None else bool(delta <= TARGET_DELTA_SHARE * span),
    }
    return section


def render_int8_section(section: dict[str, Any] | None) -> str:
    """Lines for people (empty when there was no FP32/INT8 pair to compare)."""
    if section is None:
        return ""
    ms, targets = section["median_ms_per_window"], section["targets"]
    lines = [
        f"INT8 vs FP32 on ONNX Runtime ({section['threads']} threads): {ms['int8']:.2f} vs {ms['fp32']:.2f} ms per "
        f"window, {section['speedup']:.2f}x (target >= {targets['speedup_at_least']}x: "
        f"{'met' if targets['speedup_met'] else 'NOT met'})",
        f"INT8 achieved {section['int8_gmac_per_s']:.0f} GMAC/s = {section['int8_share_of_peak']:.1%} of the CPU's "
        f"INT8 peak ({section['int8_peak_gmac_per_s']:.0f} GMAC/s)",
    ]
    accuracy = section["accuracy"]
    if "quantize_static_defaults" in accuracy:
        ours, base = accuracy["int8"], accuracy["quantize_static_defaults"]
        lines.append(
            f"accuracy on {accuracy['held_out_windows']} held-out windows, |score - FP32| in BDI-II points: INT8 MAE "
            f"{ours['mae']:.3f} (max {ours['max_abs']:.3f}); quantize_static defaults MAE {base['mae']:.3f} "
            f"(max {base['max_abs']:.3f}, {ms['quantize_static_defaults']:.2f} ms per window)"
        )
    elif accuracy["int8"]["mae"] is not None:
        lines.append(f"accuracy recorded at calibration: MAE against FP32 {accuracy['int8']['mae']:.3f} BDI-II points")
    met = targets["delta_met"]
    verdict = "unknown (pass --calib SET)" if met is None else "met" if met else "NOT met"
    lines.append(f"accuracy target: within {targets['delta_at_most']:.2f} BDI-II points of FP32: {verdict}")
    return "\n".join(lines)


def add_int8_arguments(parser: argparse.ArgumentParser) -> None:
    """Options ``python -m export bench`` takes for the INT8 comparison."""
    parser.add_argument("--calib", type=Path, help="calibration set: measure INT8 accuracy on its held-out windows")
    parser.add_argument(
        "--int8-peak", type=float, default=INT8_PEAK_GMACS, help="the CPU's INT8 peak in GMAC/s (589: 2 VNNI cores)"
    )
