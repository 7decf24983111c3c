"""The figures that check the explanations against a known answer (``scripts/check_explanations.sh`` runs them).

``python -m export.explain.check SUBCOMMAND``:

- ``hits EXPLANATIONS.json --planted mouth``: for videos whose label is above the median label, the share of their
  scored windows whose top region (of Expresso-AI's four: eyes, eyebrows, nose, mouth) is the planted one, each
  region's share taken per tile (the mean of its tiles' shares: the eyes and eyebrows have two tiles each, the
  nose and mouth one, and a sum would give a two-tile region two tiles' worth of the share every tile gets
  whatever the model learned); beside it the same with the tiles summed; and Pearson's r of all windows' scores
  with their video's label (did the model learn the planted signal at all: the figure the hit rate rests on).
- ``nose EXPLANATIONS.json``: the nose's share per video and on average, and whether it is the smallest region.
- ``compare A.json B.json``: the same windows explained twice (two methods, or a trained and a random-weight
  model): the mean Spearman rank agreement of their region shares and the mean total-variation distance.
- ``randomize CHECKPOINT OUT``: a random-weight checkpoint with the same architecture and options (Adebayo et al.,
  2018: an explanation that survives randomising the weights explains the input, not the model).
- ``descriptors``: render synthetic clips in memory and correlate each landmark-geometry descriptor, measured by the
  device's face pipeline (and, as a ceiling, on the generator's exact landmarks), with the generator's own
  per-frame action intensity.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

RESEARCH_REGIONS: dict[str, tuple[str, ...]] = {
    "eyes": ("right_eye", "left_eye"),
    "eyebrows": ("right_eyebrow", "left_eyebrow"),
    "nose": ("nose",),
    "mouth": ("mouth",),
}
# descriptor -> (generator action, sign that makes "more action" positive)
DESCRIPTOR_TRUTH: dict[str, tuple[str, float]] = {
    "eye_openness": ("eye_closure", -1.0),
    "lip_corner_pull": ("smile", 1.0),
    "brow_raise": ("brow", 1.0),
    "brow_lowering": ("brow", -1.0),
    "gaze_x": ("gaze_x", 1.0),
    "gaze_y": ("gaze_y", 1.0),
    "mouth_opening": ("jaw", 1.0),
}


def grouped(shares: dict[str, float], *, per_tile: bool = False) -> dict[str, float]:
    """Tile shares summed into the research's four regions, or averaged over each region's tiles (``per_tile``)."""
    return {
        name: sum(shares.get(tile, 0.0) for tile in tiles) / (len(tiles) if per_tile else 1)
        for name, tiles in RESEARCH_REGIONS.items()
    }


def top_group(shares: dict[str, float], *, per_tile: bool = True) -> str:
    """The research region with the largest share (per tile, or summed over its tiles)."""
    groups = grouped(shares, per_tile=per_tile)
    return max(groups, key=lambda name: groups[name])


def hit_rate(doc: dict[str, Any], planted: str) -> dict[str, Any]:
    """Share of the windows of above-median-label videos whose top region is ``planted``."""
    labels = [v["label"] for v in doc["videos"]]
    if any(label is None for label in labels):
        raise SystemExit("hits needs labels: run python -m export explain with --labels")
    median = float(np.median(labels))
    windows = [w for v in doc["videos"] if v["label"] > median for w in v["per_window"]]
    tops = [top_group(w["regions"]) for w in windows]
    summed = [top_group(w["regions"], per_tile=False) for w in windows]
    scored = [(w["score"], v["label"]) for v in doc["videos"] for w in v["per_window"]]
    return {
        "method": doc["method"],
        "planted": planted,
        # the check's premise: a model that learned the planted signal scores held-out windows by their label
        "window_score_label_r": round(_r(*map(np.array, zip(*scored, strict=True))), 3),
        "videos_above_median": sum(v["label"] > median for v in doc["videos"]),
        "windows": len(windows),
        "hit_rate": round(tops.count(planted) / len(windows), 3) if windows else None,
        "top_regions": {name: tops.count(name) for name in RESEARCH_REGIONS},
        "hit_rate_tiles_summed": round(summed.count(planted) / len(windows), 3) if windows else None,
        "top_regions_tiles_summed": {name: summed.count(name) for name in RESEARCH_REGIONS},
    }


def nose_report(doc: dict[str, Any]) -> dict[str, Any]:
    """The nose's share per video, its mean, and each region's mean share."""
    regions = list(doc["videos"][0]["regions"])
    means = {r: float(np.mean([v["regions"][r] for v in doc["videos"]])) for r in regions}
    return {
        "method": doc["method"],
        "nose_per_video": {v["video"]: v["regions"]["nose"] for v in doc["videos"]},
        "mean_shares": {r: round(s, 4) for r, s in means.items()},
        "nose_is_smallest_tile": min(means, key=lambda r: means[r]) == "nose",
        "mean_shares_research_regions": {k: round(v, 4) for k, v in grouped(means).items()},
    }


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Rank agreement and distance of the region shares of the same windows explained twice."""
    rhos, distances, video_rhos = [], [], []
    for va, vb in zip(a["videos"], b["videos"], strict=True):
        if va["video"] != vb["video"] or len(va["per_window"]) != len(vb["per_window"]):
            raise SystemExit(f"{va['video']} and {vb['video']} do not hold the same windows")
        regions = list(va["regions"])
        video_rhos.append(_rho([va["regions"][r] for r in regions], [vb["regions"][r] for r in regions]))
        for wa, wb in zip(va["per_window"], vb["per_window"], strict=True):
            x, y = np.array([wa["regions"][r] for r in regions]), np.array([wb["regions"][r] for r in regions])
            rhos.append(_rho(x, y))
            distances.append(0.5 * float(np.abs(x - y).sum()))
    return {
        "methods": [a["method"], b["method"]],
        "windows": len(distances),
        "mean_window_rank_agreement": _mean(rhos),
        "mean_video_rank_agreement": _mean(video_rhos),
        "mean_total_variation_distance": round(float(np.mean(distances)), 3),
    }


def _rho(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Spearman's rho of a few points (region shares, clip means) or of a clip's frames."""
    from export.explain.correlate import spearman  # imports the face pipeline: not for --help

    return spearman(x, y, min_count=3)


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return round(float(np.mean(finite)), 3) if finite else None


def randomize(checkpoint: Path, out: Path, seed: int = 1) -> Path:
    """A checkpoint of the same architecture and options with fresh random weights."""
    import torch

    from export.checkpoint import read_checkpoint
    from export.train import CHECKPOINT_FORMAT
    from export.zoo import get_architecture

    hints = read_checkpoint(checkpoint).hints
    torch.manual_seed(seed)
    model = get_architecture(hints["architecture"]).build(int(hints["frames"]), int(hints["size"]), hints["options"])
    keep = {k: hints[k] for k in ("architecture", "options", "frames", "size")}
    torch.save({"format": CHECKPOINT_FORMAT, **keep, "state_dict": model.state_dict()}, out)
    return out


def descriptor_truth(count: int, seconds: float, seed: int) -> dict[str, Any]:
    """How well each descriptor follows the generator's action over the frames of ``count`` rendered
    training-split clips, measured on the device pipeline's landmarks and, as a ceiling, on the generator's own
    exact landmarks for the same frames.

    Within each clip (then averaged over clips): Pearson's r (does the descriptor move in proportion to the
    action) and Spearman's rho beside ``spearman_tie_cap``, the rho that the action itself reaches against the
    same action plus a vanishing noise: event actions (blinks, brow raises, speech) hold one value between events,
    and any descriptor that is not exactly constant there ranks those tied frames at random, which caps rho well
    below 1. A tonic action (constant within a clip, e.g. ``gaze_y``) is correlated across clips, clip mean
    against clip mean (Spearman), and, since the identity's eye shape moves a clip mean more than the action does,
    also with each identity's mean taken out (Pearson, over identities with two clips or more: does the descriptor
    follow the action on the same face).
    """
    from edge.face.descriptors import DESCRIPTORS

    specs = _clips(count, seconds, seed)
    clips = [_measure_clip(clip) for clip in specs]
    identities = [clip.identity.seed for clip in specs]
    out = {}
    for name, (action, sign) in DESCRIPTOR_TRUTH.items():
        column = DESCRIPTORS.index(name)
        tonic = all(np.ptp(t[action]) < 1e-9 for _, _, t in clips)
        row: dict[str, Any] = {"action": action}
        for source, index in (("device", 0), ("exact_landmarks", 1)):
            pairs = [_finite((device, exact)[index][:, column], truth[action]) for device, exact, truth in clips]
            means = np.array([(float(np.mean(m)), float(np.mean(t))) for m, t in pairs if len(m)])
            across = _rho(means[:, 0], means[:, 1]) if len(means) > 2 else float("nan")
            row[source] = {
                "pearson_within_clips": None if tonic else _signed(sign, _mean([_r(m, t) for m, t in pairs])),
                "spearman_within_clips": None if tonic else _signed(sign, _mean([_rho(m, t) for m, t in pairs])),
                "spearman_across_clip_means": _signed(sign, round(across, 3) if np.isfinite(across) else None),
            }
            if tonic:
                within = _r(
                    *_within_identity(means, [i for i, (m, _) in zip(identities, pairs, strict=True) if len(m)])
                )
                row[source]["pearson_across_clip_means_within_identity"] = _signed(
                    sign, round(within, 3) if np.isfinite(within) else None
                )
        row["spearman_tie_cap"] = None if tonic else _mean([_tie_cap(t[action]) for _, _, t in clips])
        out[name] = row
    return {"clips": count, "frames": sum(len(m) for m, _, _ in clips), "correlations": out}


def _within_identity(means: np.ndarray, identities: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Clip means ``(C, 2)`` (descriptor, action) less their identity's mean, over identities with two clips or
    more: what is left is how a tonic action and its descriptor vary together for the same face."""
    ids = np.array(identities)
    keep = np.array([np.sum(ids == i) > 1 for i in ids], dtype=bool)
    centred = means.copy()
    for i in set(ids[keep].tolist()):
        centred[ids == i] -= means[ids == i].mean(axis=0)
    return centred[keep, 0], centred[keep, 1]


def _r(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _tie_cap(action: np.ndarray) -> float:
    """Spearman's rho of an action with itself plus a noise far below any of its steps: the most a descriptor
    that varies at all between the action's events can reach."""
    if np.ptp(action) == 0:
        return float("nan")
    steps = np.diff(np.unique(action))
    noise = np.random.default_rng(0).standard_normal(len(action)) * 1e-3 * float(steps.min())
    return _rho(action, action + noise)


def _signed(sign: float, value: float | None) -> float | None:
    return None if value is None else round(sign * value, 3)


def _finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _clips(count: int, seconds: float, seed: int) -> list[Any]:
    from export.synthetic.catalogue import clip_specs

    return clip_specs("train", count, seed=seed, seconds=seconds)


def _measure_clip(clip: Any) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The descriptors of each sampled frame of ``clip`` with a face, from the device pipeline's landmarks and from
    the generator's exact ones, and the generator's actions on the same frames."""
    from edge.face import FacePipeline
    from edge.face.descriptors import DESCRIPTORS, finish_video, frame_descriptors
    from export.dataset import default_spec
    from export.synthetic.expression import pose_landmarks
    from export.synthetic.identity import render_identity
    from export.synthetic.rig import FaceRig
    from export.synthetic.video import clip_timeline, render_clip

    spec, tiles = default_spec("NTCHW", frames=16, size=64)
    _, timeline = clip_timeline(clip)
    rig = FaceRig(render_identity(clip.identity).landmarks)
    device, exact, actions = [], [], []
    previous = previous_exact = None
    with FacePipeline(spec, tiles) as pipeline:
        for index, frame in enumerate(render_clip(clip)):
            result = pipeline.push(frame, index / clip.fps, color_order="RGB")
            if not result.sampled or result.raw_landmarks is None:
                continue
            state = timeline.states[index]
            truth = pose_landmarks(rig, state).astype(np.float32)
            values = frame_descriptors(result.raw_landmarks, previous)
            values_exact = frame_descriptors(truth, previous_exact)
            previous, previous_exact = result.raw_landmarks, truth
            device.append([values[name] for name in DESCRIPTORS])
            exact.append([values_exact[name] for name in DESCRIPTORS])
            actions.append(state)
    truth_series = {a: np.array([getattr(s, a) for s in actions]) for a, _ in DESCRIPTOR_TRUTH.values()}
    # blinks and gaze settled over the clip, as the offline explanation does (edge.face.descriptors.finish_video)
    return (
        finish_video(np.array(device, dtype=np.float64)),
        finish_video(np.array(exact, dtype=np.float64)),
        truth_series,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print one figure as JSON."""
    parser = argparse.ArgumentParser(prog="python -m export.explain.check", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    hits = sub.add_parser("hits")
    hits.add_argument("explanations", type=Path)
    hits.add_argument("--planted", choices=RESEARCH_REGIONS, required=True)
    sub.add_parser("nose").add_argument("explanations", type=Path)
    pair = sub.add_parser("compare")
    pair.add_argument("a", type=Path)
    pair.add_argument("b", type=Path)
    rand = sub.add_parser("randomize")
    rand.add_argument("checkpoint", type=Path)
    rand.add_argument("out", type=Path)
    desc = sub.add_parser("descriptors")
    desc.add_argument("--count", type=int, default=6)
    desc.add_argument("--seconds", type=float, default=10.0)
    desc.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.command == "hits":
        result: Any = hit_rate(json.loads(args.explanations.read_text()), args.planted)
    elif args.command == "nose":
        result = nose_report(json.loads(args.explanations.read_text()))
    elif args.command == "compare":
        result = compare(json.loads(args.a.read_text()), json.loads(args.b.read_text()))
    elif args.command == "randomize":
        result = {"random_checkpoint": str(randomize(args.checkpoint, args.out))}
    else:
        result = descriptor_truth(args.count, args.seconds, args.seed)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
