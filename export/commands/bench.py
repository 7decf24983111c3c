"""``python -m export bench``: latency and throughput of a bundle on every backend, precision and thread count."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from calibration.bench import add_int8_arguments, int8_section, render_int8_section
from edge.backends import create, registry, runnable
from edge.bundle import Bundle, load_bundle
from edge.cli_support import add_json_flag, print_report
from edge.errors import UsageError
from edge.preprocess import batch_windows
from export.onnx_export import random_windows

NAME = "bench"
HELP = (
    "measure latency per window (median, p90), windows/s and GMAC/s per backend, precision and thread count, and "
    "INT8 against FP32 at each thread count (the quantize_static baseline needs --calib SET)"
)
EXAMPLES = """\
  python -m export bench bundles/demo
  python -m export bench bundles/demo --threads 1,2 --runs 50 --json
  python -m export bench bundles/demo --backend onnxruntime --precision int8
  python -m export bench bundles/demo --calib ~/calib-set   # + accuracy and the quantize_static defaults baseline
"""


def _threads(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated thread counts, got {text!r}") from exc
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"thread counts must be >= 1, got {text!r}")
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``bench``."""
    parser.add_argument("bundle", type=Path, help="bundle directory")
    parser.add_argument("--threads", type=_threads, default=[1, 2], help="thread counts, e.g. 1,2 (default 1,2)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per setting (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default %(default)s)")
    parser.add_argument("--batch", type=int, default=1, help="windows per inference (default %(default)s)")
    parser.add_argument("--backend", action="append", help="only this backend (repeatable; default: all available)")
    parser.add_argument("--precision", action="append", help="only this precision (repeatable; default: all)")
    add_int8_arguments(parser)
    add_json_flag(parser)


def settings(bundle: Bundle, backends: list[str] | None, precisions: list[str] | None) -> list[tuple[str, str]]:
    """(backend, precision) pairs to measure: every available backend with every precision it can run."""
    known = registry()
    unknown = sorted(set(backends or []) - set(known))
    if unknown:
        raise UsageError(f"unknown backend {', '.join(unknown)}", fix=f"choose from: {', '.join(sorted(known))}")
    pairs = [
        (key, precision)
        for key, (runnable_here, _) in runnable(bundle).items()
        if not backends or key in backends
        for precision in runnable_here
        if not precisions or precision in precisions
    ]
    if not pairs:
        raise UsageError(
            f"nothing to measure for bundle {bundle.root} with backend {backends or 'any'} and precision "
            f"{precisions or 'any'}",
            fix="run `python -m export inspect BUNDLE` to see what can run here",
        )
    return pairs


def measure(
    bundle: Bundle, backend: str, precision: str, threads: int, batch: np.ndarray, runs: int, warmup: int
) -> dict[str, Any]:
    """Time ``runs`` inferences of ``batch`` after ``warmup`` untimed ones."""
    with create(backend, bundle, precision=precision, threads=threads) as runner:
        for _ in range(warmup):
            runner.infer(batch)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            runner.infer(batch)
            times.append((time.perf_counter() - start) * 1e3)
        device = runner.describe().get("device", "?")
    windows = batch.shape[0]
    median = statistics.median(times)
    p90 = float(np.percentile(times, 90))
    macs = int(bundle.manifest["model"]["macs_per_window"])
    return {
        "backend": backend,
        "precision": precision,
        "threads": threads,
        "device": device,
        "batch": windows,
        "median_ms_per_window": median / windows,
        "p90_ms_per_window": p90 / windows,
        "windows_per_s": windows * 1e3 / median,
        "gmac_per_s": macs * windows / (median * 1e-3) / 1e9,
    }


def speedups(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """INT8 (or FP16) against FP32 on the same backend and thread count, where a bundle has both."""
    by_key = {(r["backend"], r["threads"], r["precision"]): r for r in results}
    ratios = []
    for (backend, threads, precision), result in by_key.items():
        base = by_key.get((backend, threads, "fp32"))
        if precision != "fp32" and base is not None:
            ratio = base["median_ms_per_window"] / result["median_ms_per_window"]
            ratios.append({"backend": backend, "threads": threads, "precision": precision, "vs_fp32": ratio})
    return ratios


def bench_report(
    bundle: Bundle,
    *,
    threads: list[int],
    runs: int,
    warmup: int = 3,
    batch: int = 1,
    backends: list[str] | None = None,
    precisions: list[str] | None = None,
) -> dict[str, Any]:
    """Measure every setting and return the report."""
    from tqdm import tqdm

    if runs < 1 or batch < 1 or warmup < 0:
        raise UsageError(f"--runs {runs}, --batch {batch}, --warmup {warmup}", fix="pass runs and batch >= 1")
    spec = bundle.input
    inputs = batch_windows(random_windows(spec, batch, np.random.default_rng(0)), spec)
    plan = [(key, precision, count) for key, precision in settings(bundle, backends, precisions) for count in threads]
    results = [
        measure(bundle, key, precision, count, inputs, runs, warmup)
        for key, precision, count in tqdm(plan, desc="bench", unit="setting", file=sys.stderr, leave=False)
    ]
    model = bundle.manifest["model"]
    return {
        "bundle": str(bundle.root),
        "model": model["name"],
        "architecture": model["architecture"],
        "random_weights": model["weights"]["source"] == "random",
        "input": list(spec.shape[1:]),
        "layout": spec.layout,
        "macs_per_window": model["macs_per_window"],
        "runs": runs,
        "results": results,
        "speedups": speedups(results),
    }


def render(report: dict[str, Any]) -> str:
    """A table for people."""
    lines = [
        f"{report['model']} ({report['architecture']}), input {report['layout']} {report['input']}, "
        f"{report['macs_per_window'] / 1e9:.3f} GMAC per window, {report['runs']} runs per setting",
        f"{'backend':<12} {'precision':<9} {'threads':>7} {'median ms':>10} {'p90 ms':>9} {'windows/s':>10} "
        f"{'GMAC/s':>8}",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['backend']:<12} {r['precision']:<9} {r['threads']:>7} {r['median_ms_per_window']:>10.2f} "
            f"{r['p90_ms_per_window']:>9.2f} {r['windows_per_s']:>10.1f} {r['gmac_per_s']:>8.1f}"
        )
    for s in report["speedups"]:
        lines.append(f"{s['precision']} vs fp32 on {s['backend']} with {s['threads']} threads: {s['vs_fp32']:.2f}x")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Load the bundle, measure, print."""
    bundle = load_bundle(args.bundle)
    report = bench_report(
        bundle,
        threads=args.threads,
        runs=args.runs,
        warmup=args.warmup,
        batch=args.batch,
        backends=args.backend,
        precisions=args.precision,
    )
    inputs = batch_windows(random_windows(bundle.input, args.batch, np.random.default_rng(0)), bundle.input)
    report["int8"] = int8_section(
        bundle,
        report["results"],
        inputs,
        calib=args.calib,
        runs=args.runs,
        peak_int8_gmacs=args.int8_peak,
        peak_cores=args.peak_cores,
    )
    print_report(report, as_json=args.json, render=render)
    if report["int8"] and not args.json:
        print(render_int8_section(report["int8"]))
    return 0
