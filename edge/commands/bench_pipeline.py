"""``python -m edge bench-pipeline VIDEO``: speed and yield of the face pipeline on a video file.

Each thread setting runs in a fresh subprocess (a fresh mediapipe) restricted to that many CPU cores with
``os.sched_setaffinity``, with ``cv2.setNumThreads`` set to match. mediapipe's legacy FaceMesh API has no
thread-count option; the CPU affinity is what bounds its threads. Frames are fed as fast as they decode, with
the video's own timestamps, so only the frames the resampler takes (``sample_fps``) reach mediapipe.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge.cli_support import add_json_flag, int_list, print_report
from edge.errors import ExpressoError, UsageError
from edge.face.config import FaceConfig

NAME = "bench-pipeline"
HELP = (
    "measure the face pipeline on a video: frames/s, face and quality-gate shares, cost per stage, and the "
    "brightness, blur, yaw and pitch figures to check the quality thresholds (face.*) against a camera"
)
EXAMPLES = """\
  python -m edge bench-pipeline samples/clip_000_score04.3.mp4
  python -m edge bench-pipeline clip.mp4 --threads 1,2 --json
  python -m edge bench-pipeline clip.mp4 --bundle bundles/demo --max-frames 300
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """VIDEO, --threads, --max-frames, --bundle, --json."""
    parser.add_argument("video", type=Path, help="video file to run through the pipeline")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread (CPU core) counts (default 1,2)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--bundle", type=Path, default=None, help="take input and tiles from this bundle's manifest")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # internal: one setting
    add_json_flag(parser)


def _thread_counts(text: str) -> list[int]:
    """The thread counts of ``--threads``; a count above the cores this process may use is refused."""
    counts = int_list(text, "--threads", minimum=1, what="positive integers", example="1,2")
    cores = len(os.sched_getaffinity(0))
    if max(counts) > cores:
        fitting = ",".join(str(n) for n in sorted(set(counts)) if n <= cores) or "1"
        raise UsageError(
            f"--threads {text!r} asks for {max(counts)} threads but this process may use only {cores} CPU core(s), "
            "so the run would measure fewer threads than it reports",
            fix=f"pass --threads {fitting}",
        )
    return counts


def _check_input(video: Path, max_frames: int | None) -> None:
    """Refuse a bad --max-frames and a video that cannot be opened or has no frame, before any worker starts."""
    if max_frames is not None and max_frames < 1:
        raise UsageError(
            f"--max-frames must be at least 1, got {max_frames}", fix="pass e.g. --max-frames 300, or omit it"
        )
    from edge.face.video import iter_video_frames

    next(iter_video_frames(video, max_frames=1))  # raises InputError naming the file


class WorkerError(ExpressoError):
    """A benchmark worker failed; carries the worker's own exit code."""

    def __init__(self, message: str, exit_code: int, *, fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.exit_code = exit_code


def worker_error(threads: int, command: list[str], done: subprocess.CompletedProcess[str]) -> WorkerError:
    """The worker's own error line (its message and fix) and exit code; a crash points at the command to rerun."""
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    prefix = "python -m edge: error: "
    message = f"benchmark worker with {threads} thread(s) failed: {last.removeprefix(prefix)}"
    if last.startswith(prefix):
        return WorkerError(message, done.returncode)
    return WorkerError(message, done.returncode, fix=f"run `{' '.join(command)}` to see its whole output")


def run(args: argparse.Namespace) -> int:
    """Run one worker per thread setting and report."""
    if args.worker is not None:
        print(json.dumps(measure(args.video, args.worker, args.max_frames, args.bundle)))
        return 0
    counts = _thread_counts(args.threads)
    _check_input(args.video, args.max_frames)
    runs = []
    for threads in tqdm(counts, desc="thread settings", unit="run", disable=args.json):
        command = [sys.executable, "-m", "edge", "bench-pipeline", str(args.video), "--worker", str(threads)]
        command += ["--max-frames", str(args.max_frames)] if args.max_frames is not None else []
        command += ["--bundle", str(args.bundle)] if args.bundle else []
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise worker_error(threads, command, done)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report = {"video": str(args.video), "runs": runs}
    print_report(report, as_json=args.json, render=render)
    return 0


def measure(video: Path, threads: int, max_frames: int | None, bundle: Path | None) -> dict[str, Any]:
    """Run the pipeline over the video with ``threads`` cores and OpenCV threads; figures as a dict."""
    import cv2

    from edge.face import FacePipeline, iter_video_frames

    allowed = sorted(os.sched_getaffinity(0))
    cores = allowed[:threads]
    os.sched_setaffinity(0, cores)
    cv2.setNumThreads(threads)
    spec, tiles = _layout(bundle)
    frames = sampled = with_face = 0
    windows = passed = 0
    decode = 0.0
    seen: dict[str, list[float]] = {name: [] for name in FIGURES}
    reasons: dict[str, int] = {}
    duration = 0.0
    with FacePipeline(spec, tiles) as pipeline:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        source = iter_video_frames(video, max_frames=max_frames)
        while True:
            start = time.perf_counter()
            item = next(source, None)
            decode += time.perf_counter() - start
            if item is None:
                break
            frame, timestamp = item
            result = pipeline.push(frame, timestamp, color_order="BGR")
            frames += 1
            duration = timestamp
            if result.sampled:
                sampled += 1
                with_face += result.quality.face_present
                for name in FIGURES:
                    value = getattr(result.quality, name)
                    if value is not None:
                        seen[name].append(float(value))
            for window in result.windows:
                windows += 1
                passed += window.quality.passed
                if window.quality.reject_reason:
                    reasons[window.quality.reject_reason] = reasons.get(window.quality.reject_reason, 0) + 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        stages = {"decode": decode, **pipeline.clock.seconds}
        limits = figure_limits(pipeline.config)
    video_seconds = duration + (duration / max(frames - 1, 1) if frames > 1 else 0.0)
    return {
        "threads": threads,
        "cpu_cores": cores,
        "controls": "CPU affinity (bounds mediapipe's threads) and cv2.setNumThreads; mediapipe's own count is fixed",
        "frames": frames,
        "sampled_frames": sampled,
        "sample_fps": spec.sample_fps,
        "video_seconds": round(video_seconds, 3),
        "frames_per_second": round(frames / wall, 1) if wall else None,
        "face_share": round(with_face / sampled, 3) if sampled else None,
        "windows": windows,
        "windows_passed_share": round(passed / windows, 3) if windows else None,
        "reject_reasons": reasons,
        "figures": {name: describe_figure(seen[name], *limits[name]) for name in FIGURES},
        "ms_per_frame": {name: round(1000 * value / max(frames, 1), 3) for name, value in stages.items()},
        "ms_per_sampled_frame": {name: round(1000 * value / max(sampled, 1), 3) for name, value in stages.items()},
        "cpu_seconds": round(cpu, 3),
        "cpu_share_at_video_rate": round(cpu / video_seconds, 3) if video_seconds else None,
    }


FIGURES = ("brightness", "blur", "yaw", "pitch")
"""Per sampled frame with a face: the quality figures the README tells operators to check against their camera."""


def figure_limits(config: FaceConfig) -> dict[str, tuple[float | None, float | None, bool]]:
    """Each figure's (low, high) threshold of the quality gate, and whether it is judged by absolute value."""
    return {
        "brightness": (config.min_brightness, config.max_brightness, False),
        "blur": (config.min_blur, None, False),
        "yaw": (None, config.max_abs_yaw, True),
        "pitch": (None, config.max_abs_pitch, True),
    }


def describe_figure(values: list[float], low: float | None, high: float | None, absolute: bool) -> dict[str, Any]:
    """Percentiles of one figure, the gate's thresholds (face.* keys) and the share of frames outside them."""
    if not values:
        return {"frames": 0}
    data = np.asarray(values, dtype=np.float64)
    judged = np.abs(data) if absolute else data
    outside = np.zeros(len(data), dtype=bool)
    if low is not None:
        outside |= judged < low
    if high is not None:
        outside |= judged > high
    p5, p50, p95 = np.percentile(data, [5, 50, 95])
    return {
        "frames": len(values),
        "min": round(float(data.min()), 1),
        "p5": round(float(p5), 1),
        "median": round(float(p50), 1),
        "p95": round(float(p95), 1),
        "max": round(float(data.max()), 1),
        "threshold": {"min": low, "max": high, "of": "|value|" if absolute else "value"},
        "outside_share": round(float(outside.mean()), 3),
    }


def _layout(bundle: Path | None) -> tuple[Any, Any]:
    from edge.bundle import InputSpec, Tile, load_bundle
    from edge.layout import default_input_section, default_regions_section

    if bundle is not None:
        loaded = load_bundle(bundle)
        return loaded.input, loaded.tiles
    tiles = tuple(Tile(**tile) for tile in default_regions_section()["tiles"])
    return InputSpec.from_manifest(default_input_section(layout="NCTHW")), tiles


def render(report: dict[str, Any]) -> str:
    """Human-readable table of the runs."""
    lines = [f"face pipeline on {report['video']}"]
    for run_ in report["runs"]:
        per = run_["ms_per_frame"]
        lines += [
            f"- {run_['threads']} thread(s) on cores {run_['cpu_cores']}: {run_['frames_per_second']} frames/s "
            f"({run_['frames']} frames, {run_['sampled_frames']} sampled at {run_['sample_fps']} fps)",
            f"  face in {_pct(run_['face_share'])} of sampled frames; {run_['windows']} windows, "
            f"{_pct(run_['windows_passed_share'])} pass the quality gate {run_['reject_reasons'] or ''}",
            "  ms per camera frame: " + ", ".join(f"{name} {value:.2f}" for name, value in per.items()),
            "  ms per sampled frame: "
            + ", ".join(f"{name} {value:.2f}" for name, value in run_["ms_per_sampled_frame"].items()),
            f"  CPU: {run_['cpu_seconds']} s for {run_['video_seconds']} s of video "
            f"= {run_['cpu_share_at_video_rate']} of a core in real time",
            *(_figure_line(name, figure) for name, figure in run_["figures"].items()),
        ]
    lines.append(f"  ({report['runs'][0]['controls']})" if report["runs"] else "")
    return "\n".join(lines)


def _figure_line(name: str, figure: dict[str, Any]) -> str:
    if not figure["frames"]:
        return f"  {name}: no frame with a face"
    limit = figure["threshold"]
    bounds = " and ".join(f"{key} {limit[key]}" for key in ("min", "max") if limit[key] is not None)
    return (
        f"  {name}: median {figure['median']} (5-95%: {figure['p5']} to {figure['p95']}, range {figure['min']} to "
        f"{figure['max']}); gate {limit['of']} {bounds}: {_pct(figure['outside_share'])} of frames outside"
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"
