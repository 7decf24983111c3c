"""Which clips make up a split, and writing a split as videos plus a labels CSV.

Splits never share identities, clip seeds or lighting kinds: ``train`` uses lighting even/warm/dim, ``heldout``
side/cool, and every split draws identity and clip seeds from its own range, so held-out numbers are honest.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge.errors import UsageError
from edge.scale import BDI_II, NamedScale, Scale
from export.synthetic.behaviour import SCORE_MAX, SIGNAL_REGIONS
from export.synthetic.identity import make_identity
from export.synthetic.video import ClipSpec, write_clip

SPLITS = ("demo", "train", "heldout")
SPLIT_LIGHTING = {"train": ("even", "warm", "dim"), "heldout": ("side", "cool"), "demo": ("cool", "even", "side")}
CSV_COLUMNS = ("video", "score", "identity", "photo", "skin_tone", "background", "lighting", "seed")
_SEED_STRIDE = 100_000


def clip_specs(
    split: str,
    count: int,
    *,
    seed: int = 0,
    seconds: float | None = None,
    fps: float | None = None,
    signal: tuple[str, ...] = SIGNAL_REGIONS,
) -> list[ClipSpec]:
    """``count`` clip specs of ``split``; scores are spread evenly over 0-63 (shuffled); the label drives the
    behaviour of the ``signal`` regions only."""
    unknown = sorted(set(signal) - set(SIGNAL_REGIONS))
    if unknown or not signal:
        raise UsageError(
            f"signal regions {', '.join(unknown) or '(none)'} not known",
            fix=f"name one or more of {', '.join(SIGNAL_REGIONS)}, comma-separated",
        )
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}", fix=f"use one of {', '.join(SPLITS)}")
    if not 0 <= seed < 1000:
        raise UsageError(f"--seed must lie in 0-999 (splits use disjoint seed ranges), got {seed}", fix="pick one")
    if count < 1:
        raise UsageError(f"--count must be at least 1, got {count}", fix="pass --count 1 or more")
    base = (SPLITS.index(split) * 1000 + seed) * _SEED_STRIDE
    rng = np.random.default_rng([base, 31])
    scores = (np.arange(count) + rng.uniform(0.1, 0.9, count)) / count * SCORE_MAX
    if split != "demo":
        rng.shuffle(scores)
    identities = count if split == "demo" else max(2, min(count, count // 6 + 2))
    lighting = SPLIT_LIGHTING[split]
    demo = split == "demo"
    specs = []
    for index in range(count):
        first = demo and index == 0
        specs.append(
            ClipSpec(
                identity=make_identity(base + index % identities),
                score=round(float(scores[index]), 1),
                seed=base + 50_000 + index,
                lighting=lighting[int(rng.integers(len(lighting)))] if not demo else lighting[index % len(lighting)],
                seconds=seconds or (12.0 if demo else 10.0),
                fps=fps or (15.0 if demo else 8.0),
                no_face=((4.0, 5.5),) if first else (),
                two_faces=((8.0, 10.5),) if first else (),
                second_identity=make_identity(base + identities + 1) if first else None,
                signal=tuple(signal),
            )
        )
    return specs


def label_on_scale(latent: float, scale: Scale) -> float:
    """The clip's latent BDI-II score as a label on ``scale`` (export/synthetic/README.md, "Labels on other scales").

    A published scale with at least as many bands as BDI-II gets a band-preserving piecewise-linear map: BDI-II's
    band edges (0, 13.5, 19.5, 28.5, 63) go to the scale's first band edges and its top (PHQ-9: 0, 4.5, 9.5, 14.5,
    27), so a clip keeps its severity band and its rank; any other scale gets the latent's share of 0-63 of its
    range. This relabels invented behaviour: it is no clinical crosswalk between questionnaires.
    """
    if scale == BDI_II:
        return latent
    edges = [BDI_II.low, *(band.low - 0.5 for band in BDI_II.bands[1:]), BDI_II.high]
    if scale.integer and len(scale.bands) >= len(BDI_II.bands):
        targets = [scale.low, *(band.low - 0.5 for band in scale.bands[1 : len(BDI_II.bands)]), scale.high]
    else:
        targets = [scale.low + (edge - BDI_II.low) / BDI_II.span * scale.span for edge in edges]
    return float(np.interp(latent, edges, targets))


def write_split(
    specs: list[ClipSpec],
    out_dir: Path,
    *,
    csv_name: str = "labels.csv",
    progress: bool = True,
    scale: Scale = BDI_II,
    also: Sequence[NamedScale] = (),
) -> Path:
    """Render every clip into ``out_dir`` and write the labels CSV (video paths relative to it, scores on
    ``scale`` by :func:`label_on_scale`, and for each of ``also`` the latent on its scale in a column named after
    it, the labels of a model's further output); returns the CSV."""
    clashes = [o.name for o in also if o.name in CSV_COLUMNS]
    if clashes or len({o.name for o in also}) != len(also):
        raise UsageError(
            f"label column(s) {', '.join(o.name for o in also)} repeat a name or one of {', '.join(CSV_COLUMNS)}",
            fix="give each further output its own name, e.g. phq9:phq-9",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, spec in enumerate(tqdm(specs, desc="rendering clips", unit="clip", disable=not progress)):
        score = round(label_on_scale(spec.score, scale), 1)
        name = f"clip_{index:03d}_score{score:04.1f}.mp4"
        write_clip(spec, out_dir / name)
        identity = spec.identity
        rows.append(
            {
                "video": name,
                "score": score,
                "identity": f"id{identity.seed}",
                "photo": identity.photo,
                "skin_tone": identity.tone_band,
                "background": identity.background,
                "lighting": spec.lighting,
                "seed": spec.seed,
                **{o.name: round(label_on_scale(spec.score, o.scale), 1) for o in also},
            }
        )
    path = out_dir / csv_name
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*CSV_COLUMNS, *(o.name for o in also)])
        writer.writeheader()
        writer.writerows(rows)
    return path
