"""Calibrate a bundle: ranges from the set, both Q/DQ models, the TensorRT table, the report, the gate, the manifest.

Steps compose (``calibrate_ranges`` -> ``quantize_variant`` -> ``table_from_ranges``); this module runs them in a
scratch directory and touches the bundle only after the accuracy gate passed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime

from calibration.dataset import CalibrationSet
from calibration.quantize import (
    ONNXRUNTIME_CPU,
    TENSORRT,
    amax_of,
    calibrate_ranges,
    quantize_variant,
    ranges_of,
)
from calibration.report import accuracy_section, compare, histograms_png, layer_errors, render_html
from calibration.trt_table import table_from_amax, write_table
from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.bundle import Bundle, OutputSpec, write_manifest
from edge.errors import AccuracyGateError, BundleError

log = logging.getLogger(__name__)

INT8_ORT = "model.int8.ort.onnx"
INT8_TRT = "model.int8.trt.onnx"
TABLE = "calib.trt.cache"
REPORT_JSON = "calibration_report.json"
REPORT_HTML = "calibration_report.html"
MAX_DELTA_SHARE = 0.01
"""Default gate: INT8 within 1% of the output range of FP32, in the output's units (0.63 BDI-II, 0.27 PHQ-9 points)."""
LAYER_WINDOWS = 4
HISTOGRAMS = 6


def default_max_delta(output: OutputSpec) -> float:
    """1% of the output range."""
    return MAX_DELTA_SHARE * output.span


def fp32_model(bundle: Bundle) -> Path:
    """Path of the bundle's FP32 ONNX model."""
    artifact = bundle.find("onnx", precision="fp32")
    if artifact is None:
        raise BundleError(f"bundle {bundle.root} has no FP32 ONNX model", fix="export it with `python -m export onnx`")
    return bundle.path_of(artifact)


def cpu_session(model: Path, threads: int | None = None) -> onnxruntime.InferenceSession:
    """A quiet ONNX Runtime CPU session of ``model`` with ``threads`` intra-op threads (default: every core)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])


def output_gates(
    bundle: Bundle, fp32: npt.NDArray[np.float64], int8: dict[str, npt.NDArray[np.float64]], max_delta: float
) -> list[dict[str, Any]]:
    """The accuracy gate of every output (primary first), each in its own units: the worst INT8 model's mean
    absolute difference from FP32, against ``max_delta`` (the primary output's units) as the same share of that
    output's range (1% by default: 0.63 BDI-II, 0.27 PHQ-9 points)."""
    share = max_delta / bundle.scale.span
    gates = []
    for column, output in enumerate(bundle.outputs):
        against = {name: compare(fp32[:, column], scores[:, column], output.scale) for name, scores in int8.items()}
        measured = max(float(m["mae"] or 0.0) for m in against.values())
        limit = share * output.scale.span
        gates.append(
            {
                "name": output.name,
                "units": output.scale.name,
                "max_delta": limit,
                "measured_delta": measured,
                "passed": measured <= limit,
                "against_fp32": against,
            }
        )
    return gates


def run_scores(model: Path, batches: Iterable[npt.NDArray[np.float32]], threads: int | None = None) -> npt.NDArray:
    """The primary output's scores of ``model`` on ONNX Runtime's CPU for every window of ``batches``."""
    return run_all_scores(model, batches, threads)[:, 0]


def run_all_scores(
    model: Path, batches: Iterable[npt.NDArray[np.float32]], threads: int | None = None
) -> npt.NDArray[np.float64]:
    """Every output's scores of ``model`` on ONNX Runtime's CPU for every window of ``batches``: ``(N, K)``."""
    session = cpu_session(model, threads)
    name = session.get_inputs()[0].name
    scores = [np.asarray(session.run(None, {name: batch})[0]).reshape(len(batch), -1) for batch in batches]
    return np.concatenate(scores).astype(np.float64)


@dataclass(frozen=True)
class Outcome:
    """What calibration produced: the updated bundle and the report."""

    bundle: Bundle
    report: dict[str, Any]


def _histograms(
    values: dict[str, npt.NDArray[np.float32]], ranges: dict[str, tuple[float, float]], tensors: list[str]
) -> str | None:
    items = [(t, values[t], *ranges[t]) for t in tensors if t in values and t in ranges and values[t].size]
    return histograms_png(items) if items else None


def evaluate(
    bundle: Bundle, cset: CalibrationSet, work: Path, *, method: str, holdout_fraction: float, max_delta: float
) -> dict[str, Any]:
    """Calibrate into ``work`` and measure both INT8 models against FP32 on held-out windows."""
    spec = bundle.input
    cset.check_fits(spec, bundle.tiles)
    calib_idx, held_idx = cset.split(holdout_fraction)
    source = fp32_model(bundle)
    ranges = calibrate_ranges(source, cset.batches(calib_idx, spec), method=method)
    quantize_variant(source, work / INT8_ORT, ranges, ONNXRUNTIME_CPU)
    quantize_variant(source, work / INT8_TRT, ranges, TENSORRT)
    write_table(work / TABLE, table_from_amax(amax_of(ranges)))
    fp32_all = run_all_scores(source, cset.batches(held_idx, spec))  # (N, K): every output of the bundle
    int8_all = {name: run_all_scores(work / name, cset.batches(held_idx, spec)) for name in (INT8_ORT, INT8_TRT)}
    fp32, int8 = fp32_all[:, 0], {name: scores[:, 0] for name, scores in int8_all.items()}
    accuracy = accuracy_section(fp32, int8, cset.labels[held_idx], bundle.scale)  # labels: the primary output's
    layer_batches = list(cset.batches(held_idx[:LAYER_WINDOWS], spec, batch_size=1))
    layers, values = layer_errors(source, work / INT8_ORT, layer_batches)
    plain = ranges_of(ranges)
    shown = [spec.name, *(row["tensor"] for row in layers[: HISTOGRAMS - 1])]
    measured = max(metrics["mae"] for metrics in accuracy["against_fp32"].values())
    outputs = output_gates(bundle, fp32_all, int8_all, max_delta)
    report = {
        "model": bundle.name,
        "disclaimer": NOT_A_DIAGNOSTIC_DEVICE,
        "method": method,
        "windows": {"calibration": len(calib_idx), "held_out": len(held_idx)},
        "sources": int(cset.summary.get("sources", 0)),
        "accuracy": accuracy,
        "layers": layers,
        "gate": {
            "metric": "mean absolute difference from FP32 on held-out windows, worst INT8 model "
            f"({bundle.scale.name} points)",
            "units": bundle.scale.name,
            "max_delta": max_delta,
            "measured_delta": measured,
            "passed": bool(measured <= max_delta) and all(out["passed"] for out in outputs),
        },
        "outputs": outputs,
    }
    (work / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (work / REPORT_HTML).write_text(render_html(report, _histograms(values, plain, shown)), encoding="utf-8")
    return report


def _opset(path: Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return max(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def _new_artifacts(work: Path, method: str) -> list[dict[str, Any]]:
    weights = "int8 symmetric per-channel (axis 0)"
    return [
        {
            "path": INT8_ORT,
            "kind": "onnx",
            "precision": "int8",
            "target": "onnxruntime-cpu",
            "opset": _opset(work / INT8_ORT),
            "details": {"format": "QDQ", "activations": "uint8 asymmetric", "weights": weights, "method": method},
        },
        {
            "path": INT8_TRT,
            "kind": "onnx",
            "precision": "int8",
            "target": "tensorrt",
            "opset": _opset(work / INT8_TRT),
            "details": {
                "format": "QDQ",
                "activations": "int8 symmetric (zero point 0)",
                "weights": weights,
                "method": method,
            },
        },
        {
            "path": TABLE,
            "kind": "trt-calibration-table",
            "target": "tensorrt",
            "details": {"format": "TensorRT calibration cache", "method": method},
        },
        {"path": REPORT_JSON, "kind": "report", "details": {"about": "INT8 accuracy against FP32"}},
        {"path": REPORT_HTML, "kind": "report", "details": {"about": "INT8 accuracy against FP32"}},
    ]


def _replaced(record: dict[str, Any]) -> bool:
    """Artifacts a new calibration supersedes: earlier INT8 models and engines, the table and its own reports."""
    return (
        record["kind"] == "trt-calibration-table"
        or record["path"] in (REPORT_JSON, REPORT_HTML)
        or (record["kind"] in ("onnx", "tensorrt-engine") and record.get("precision") == "int8")
    )


def record_in_bundle(bundle: Bundle, work: Path, report: dict[str, Any], cset: CalibrationSet) -> Bundle:
    """Move the new files into the bundle and write its manifest with their hashes and the calibration summary."""
    manifest = json.loads(json.dumps(bundle.manifest))
    kept = [record for record in manifest["artifacts"] if not _replaced(record)]
    new = _new_artifacts(work, report["method"])
    for stale in {r["path"] for r in manifest["artifacts"]} - {r["path"] for r in kept} - {r["path"] for r in new}:
        log.info("removing %s: superseded by this calibration", stale)
        (bundle.root / stale).unlink(missing_ok=True)
    for record in new:
        shutil.copyfile(work / record["path"], bundle.root / record["path"])
    manifest["artifacts"] = kept + new
    manifest["calibration"] = {
        "method": report["method"],
        "tool": f"onnxruntime {onnxruntime.__version__} quantization calibrators",
        "windows": report["windows"],
        "sources": report["sources"],
        "quality": {"passed": cset.summary.get("passed"), "rejected": cset.summary.get("rejected", {})},
        "set_sha256": cset.summary.get("windows_sha256"),
        "max_delta": report["gate"]["max_delta"],
        "measured_delta": report["gate"]["measured_delta"],
        "delta_metric": report["gate"]["metric"],
        "outputs": [{k: out[k] for k in ("name", "units", "max_delta", "measured_delta")} for out in report["outputs"]],
        "note": "summary only: the calibration set holds face crops and stays on the engineer's machine",
    }
    return write_manifest(bundle.root, manifest)


def calibrate_bundle(
    bundle: Bundle,
    cset: CalibrationSet,
    *,
    method: str = "minmax",
    max_delta: float | None = None,
    holdout_fraction: float = 0.25,
) -> Outcome:
    """Calibrate ``bundle`` from ``cset``; raise :class:`AccuracyGateError` (bundle untouched) past ``max_delta``."""
    limit = default_max_delta(bundle.output) if max_delta is None else max_delta
    with tempfile.TemporaryDirectory(prefix="expresso-calibrate-") as tmp:
        work = Path(tmp)
        report = evaluate(bundle, cset, work, method=method, holdout_fraction=holdout_fraction, max_delta=limit)
        if not report["gate"]["passed"]:
            kept = Path(tempfile.mkdtemp(prefix="expresso-calibration-failed-"))
            for name in (REPORT_JSON, REPORT_HTML):
                shutil.copyfile(work / name, kept / name)
            failed = next(out for out in report["outputs"] if not out["passed"])
            own = "" if failed is report["outputs"][0] else f" ({failed['max_delta']:.3f}, the same share of its range)"
            raise AccuracyGateError(
                f"INT8 drifts {failed['measured_delta']:.3f} {failed['units']} points from FP32 on output "
                f"{failed['name']!r}, {report['windows']['held_out']} held-out windows (mean absolute difference), "
                f"more than --max-delta {limit:.3f}{own}; the bundle was not changed (report: {kept / REPORT_HTML})",
                fix="try --method percentile or entropy, collect more and more varied calibration windows, "
                "or raise --max-delta if that drift is acceptable",
            )
        updated = record_in_bundle(bundle, work, report, cset)
    return Outcome(updated, report)
