"""FP32 against INT8 on ONNX Runtime's CPU in one run: latency and speed-up at every thread count, achieved ops/s
as a share of the INT8 peak of the cores in use, the accuracy delta and, with a calibration set, onnxruntime's
default ``quantize_static`` as the accuracy baseline (flagged when it collapsed to a near-constant output).

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
from calibration.pipeline import cpu_session, fp32_model, run_scores
from calibration.quantize import quantize_default
from calibration.report import compare
from edge.bundle import Bundle

INT8_PEAK_GMACS = 589.0
"""INT8 multiply-accumulates per second (G) of the 2-core AVX512-VNNI machine in FIELD-NOTES; pass your own."""
INT8_PEAK_CORES = 2
"""Cores :data:`INT8_PEAK_GMACS` counts: a run on fewer threads is held against that share of the peak."""
TARGET_SPEEDUP = 2.5
TARGET_DELTA_SHARE = 0.01
COLLAPSED_SPREAD = 0.1
"""A model whose scores on the held-out windows vary less than this share of FP32's (standard deviation) has
collapsed to a near-constant output: its MAE is no fair baseline."""
NO_BASELINE = "quantize_static defaults baseline: not measured (it needs calibration windows: pass --calib SET)"


def _baseline_latency(model: Path, batch: npt.NDArray[np.float32], runs: int, threads: int) -> float:
    """Median ms per window of a plain ONNX Runtime session (the baseline model is not in the bundle)."""
    session = cpu_session(model, threads)
    name = session.get_inputs()[0].name
    for _ in range(2):
        session.run(None, {name: batch})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: batch})
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / len(batch)


def collapsed(reference: npt.ArrayLike, candidate: npt.ArrayLike) -> bool:
    """Whether ``candidate``'s scores barely vary where ``reference``'s (FP32) do: a near-constant output."""
    ref_std = float(np.std(np.asarray(reference, dtype=np.float64)))
    cand_std = float(np.std(np.asarray(candidate, dtype=np.float64)))
    return ref_std > 0 and cand_std <= COLLAPSED_SPREAD * ref_std


def _accuracy(bundle: Bundle, calib: Path, baseline: Path) -> dict[str, Any]:
    """FP32, the bundle's INT8 and the default-quantized baseline on the set's held-out windows."""
    cset = load_set(calib)
    cset.check_fits(bundle.input, bundle.tiles)
    calib_idx, held_idx = cset.split(0.25)
    source = fp32_model(bundle)
    quantize_default(source, baseline, list(cset.batches(calib_idx, bundle.input)))
    int8 = bundle.find("onnx", precision="int8", target="onnxruntime-cpu")
    assert int8 is not None
    scores = {
        "fp32": run_scores(source, cset.batches(held_idx, bundle.input)),
        "int8": run_scores(bundle.path_of(int8), cset.batches(held_idx, bundle.input)),
        "quantize_static_defaults": run_scores(baseline, cset.batches(held_idx, bundle.input)),
    }
    return {
        "held_out_windows": len(held_idx),
        "held_out_sources": len(np.unique(cset.source[held_idx])),
        "int8": compare(scores["fp32"], scores["int8"], bundle.scale),
        "quantize_static_defaults": compare(scores["fp32"], scores["quantize_static_defaults"], bundle.scale),
        "output_std": {name: float(np.std(values)) for name, values in scores.items()},
        "baseline_collapsed": collapsed(scores["fp32"], scores["quantize_static_defaults"]),
    }


def _pairs(results: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """ONNX Runtime's FP32 and INT8 results at every thread count measured for both, fewest threads first."""
    found = {(r["precision"], r["threads"]): r for r in results if r["backend"] == "onnxruntime"}
    common = sorted(t for (p, t) in found if p == "int8" and ("fp32", t) in found)
    return [(found[("fp32", t)], found[("int8", t)]) for t in common]


def _row(fp32: dict[str, Any], int8: dict[str, Any], peak_gmacs: float, peak_cores: int) -> dict[str, Any]:
    """The comparison at one thread count; the peak is scaled to the cores that many threads can use."""
    threads = int8["threads"]
    peak = peak_gmacs * min(threads, peak_cores) / peak_cores
    speedup = fp32["median_ms_per_window"] / int8["median_ms_per_window"]
    return {
        "threads": threads,
        "median_ms_per_window": {"fp32": fp32["median_ms_per_window"], "int8": int8["median_ms_per_window"]},
        "speedup": speedup,
        "speedup_met": speedup >= TARGET_SPEEDUP,
        "int8_gmac_per_s": int8["gmac_per_s"],
        "int8_peak_gmac_per_s": peak,
        "int8_share_of_peak": int8["gmac_per_s"] / peak,
    }


def int8_section(
    bundle: Bundle,
    results: list[dict[str, Any]],
    batch: npt.NDArray[np.float32],
    *,
    calib: Path | None = None,
    runs: int = 20,
    peak_int8_gmacs: float = INT8_PEAK_GMACS,
    peak_cores: int = INT8_PEAK_CORES,
) -> dict[str, Any] | None:
    """FP32 against INT8 from ``python -m export bench`` results at every thread count, with accuracy and the
    CPU-peak share (the peak of ``peak_cores`` cores scaled to the threads used).

    With ``calib`` (a calibration set) the accuracy is measured on its held-out windows, side by side with
    onnxruntime's ``quantize_static`` defaults; without it the manifest's recorded delta is reported and the
    baseline is not measured (it needs calibration windows).
    """
    pairs = _pairs(results)
    if not pairs:
        return None
    span = bundle.output.span
    rows = [_row(fp32, int8, peak_int8_gmacs, peak_cores) for fp32, int8 in pairs]
    section: dict[str, Any] = {"by_threads": rows, "peak": {"int8_gmac_per_s": peak_int8_gmacs, "cores": peak_cores}}
    if calib is not None:
        with tempfile.TemporaryDirectory(prefix="expresso-bench-") as tmp:
            baseline = Path(tmp) / "baseline.onnx"
            section["accuracy"] = _accuracy(bundle, calib, baseline)
            for row in rows:
                ms = _baseline_latency(baseline, batch, runs, row["threads"])
                row["median_ms_per_window"]["quantize_static_defaults"] = ms
        delta = section["accuracy"]["int8"]["mae"]
    else:
        recorded = bundle.manifest.get("calibration") or {}
        delta = recorded.get("measured_delta")
        section["accuracy"] = {
            "recorded_in_manifest": recorded.get("delta_metric"),
            "int8": {"mae": delta},
            "quantize_static_defaults": None,
            "baseline_note": NO_BASELINE,
        }
    section["targets"] = {
        "speedup_at_least": TARGET_SPEEDUP,
        "speedup_met": all(row["speedup_met"] for row in rows),
        "delta_at_most": TARGET_DELTA_SHARE * span,
        "delta_met": None if delta is None else bool(delta <= TARGET_DELTA_SHARE * span),
        "units": bundle.scale.name,
    }
    return section


def _speed_lines(section: dict[str, Any]) -> list[str]:
    lines = []
    target = section["targets"]["speedup_at_least"]
    for row in section["by_threads"]:
        ms = row["median_ms_per_window"]
        baseline = ms.get("quantize_static_defaults")
        lines.append(
            f"INT8 vs FP32 on ONNX Runtime, {row['threads']} thread(s): {ms['int8']:.2f} vs {ms['fp32']:.2f} ms per "
            f"window, {row['speedup']:.2f}x (target >= {target}x: {'met' if row['speedup_met'] else 'NOT met'})"
            + ("" if baseline is None else f"; quantize_static defaults {baseline:.2f} ms")
        )
        lines.append(
            f"  INT8 {row['int8_gmac_per_s']:.0f} GMAC/s = {row['int8_share_of_peak']:.1%} of the INT8 peak of "
            f"{min(row['threads'], section['peak']['cores'])} of {section['peak']['cores']} cores "
            f"({row['int8_peak_gmac_per_s']:.0f} GMAC/s)"
        )
    return lines


def _accuracy_lines(section: dict[str, Any]) -> list[str]:
    accuracy, units = section["accuracy"], section["targets"]["units"]
    ours, base = accuracy["int8"], accuracy["quantize_static_defaults"]
    if base is None:
        mae = ours["mae"]
        lines = [] if mae is None else [f"accuracy recorded at calibration: MAE against FP32 {mae:.3f} {units} points"]
        return [*lines, accuracy["baseline_note"]]
    lines = [
        f"accuracy on {accuracy['held_out_windows']} held-out windows of {accuracy['held_out_sources']} source(s), "
        f"|score - FP32| in {units} points: INT8 MAE {ours['mae']:.3f} (max {ours['max_abs']:.3f}); "
        f"quantize_static defaults MAE {base['mae']:.3f} (max {base['max_abs']:.3f})"
    ]
    if accuracy["baseline_collapsed"]:
        std = accuracy["output_std"]
        lines.append(
            f"WARNING: the quantize_static defaults baseline collapsed to a near-constant output (score std "
            f"{std['quantize_static_defaults']:.3f} vs FP32's {std['fp32']:.3f} on these windows): its MAE is "
            "not a fair comparison"
        )
    return lines


def render_int8_section(section: dict[str, Any] | None) -> str:
    """Lines for people (empty when there was no FP32/INT8 pair to compare)."""
    if section is None:
        return ""
    targets = section["targets"]
    met = targets["delta_met"]
    verdict = "unknown (pass --calib SET)" if met is None else "met" if met else "NOT met"
    return "\n".join(
        [
            *_speed_lines(section),
            *_accuracy_lines(section),
            f"accuracy target: within {targets['delta_at_most']:.2f} {targets['units']} points of FP32: {verdict}",
        ]
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def add_int8_arguments(parser: argparse.ArgumentParser) -> None:
    """Options ``python -m export bench`` takes for the INT8 comparison."""
    parser.add_argument(
        "--calib",
        type=Path,
        metavar="SET",
        help="calibration set: measure INT8 accuracy on its held-out windows, and onnxruntime's quantize_static "
        "defaults as the baseline (without --calib there is no baseline)",
    )
    parser.add_argument(
        "--int8-peak",
        type=float,
        default=INT8_PEAK_GMACS,
        help="the CPU's INT8 peak in GMAC/s over --peak-cores cores (default %(default)s: 2 VNNI cores)",
    )
    parser.add_argument(
        "--peak-cores",
        type=_positive,
        default=INT8_PEAK_CORES,
        help="cores --int8-peak counts; a run on fewer threads is held against that share (default %(default)s)",
    )
