"""Which zoo architecture a checkpoint's weights fit: key names and shapes against each one, built without memory.

Every architecture is built on PyTorch's ``meta`` device (shapes, no storage) with the options its
``options_from_shapes`` reads off the checkpoint, else its defaults. Its fit is the share of its parameters the
checkpoint holds with the right shape, after the best key prefix is stripped, less what the checkpoint holds that it
does not know; a head of another shape (Kinetics' 400 classes) still counts, as loading re-initialises it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from export.checkpoint import CheckpointError, CheckpointInfo, RawCheckpoint, best_prefix, load_checkpoint
from export.zoo import Architecture, architectures

CONFIDENT = 0.98
"""A fit at least this good names the architecture without asking."""
_PROBE_FRAMES = 16


@dataclass(frozen=True)
class Fit:
    """How well a checkpoint's tensors fit one architecture."""

    architecture: str
    options: dict[str, Any]
    matched: int
    expected: int
    unexpected: int

    @property
    def score(self) -> float:
        """Matched parameters over the architecture's plus the checkpoint's unknown ones (1.0: a perfect fit)."""
        return self.matched / max(self.expected + self.unexpected, 1)

    def describe(self) -> str:
        """E.g. ``r3d_18 (62/62 keys)``."""
        extra = f", {self.unexpected} unknown" if self.unexpected else ""
        return f"{self.architecture} ({self.matched}/{self.expected} keys{extra})"


def _shapes(architecture: Architecture, options: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = architecture.build(_PROBE_FRAMES, max(architecture.min_size, 64), options)
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def fit_of(architecture: Architecture, shapes: dict[str, tuple[int, ...]]) -> Fit:
    """How well tensors of these ``shapes`` (by key) fit ``architecture``."""
    prefix = best_prefix(list(shapes), set(_shapes(architecture, {})))
    found = {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}
    options: dict[str, Any] = {}
    if architecture.options_from_shapes is not None:
        options = {k: v for k, v in architecture.options_from_shapes(found).items() if k in architecture.defaults}
    try:
        own = _shapes(architecture, options)
    except Exception:  # options read off odd shapes may not build: fall back to the defaults
        options, own = {}, _shapes(architecture, {})
    matched = sum(1 for k, shape in own.items() if k in found and (found[k] == shape or k in architecture.head_keys))
    unexpected = sum(1 for k in found if k not in own and not k.endswith("num_batches_tracked"))
    return Fit(architecture.name, options, matched, len(own), unexpected)


def rank_fits(tensors: dict[str, torch.Tensor]) -> list[Fit]:
    """Every zoo architecture's fit to ``tensors``, best first."""
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    return sorted((fit_of(a, shapes) for a in architectures().values()), key=lambda f: -f.score)


def infer_architecture(tensors: dict[str, torch.Tensor]) -> Fit | None:
    """The architecture the weights fit without doubt, or None (the caller falls back to the default)."""
    best = rank_fits(tensors)[0]
    return best if best.score >= CONFIDENT else None


def better_fit(tensors: dict[str, torch.Tensor], chosen: str) -> Fit | None:
    """Another architecture the weights fit better than ``chosen``, if any (for an error message)."""
    fits = rank_fits(tensors)
    mine = next(fit for fit in fits if fit.architecture == chosen)
    return fits[0] if fits[0].architecture != chosen and fits[0].score > mine.score else None


def load_with_suggestion(model: nn.Module, raw: RawCheckpoint, architecture: Architecture) -> CheckpointInfo:
    """:func:`load_checkpoint`, whose refusal also names a zoo architecture the weights fit better, if any."""
    try:
        return load_checkpoint(model, raw, architecture)
    except CheckpointError as exc:
        other = better_fit(raw.tensors, architecture.name)
        if other is None:
            raise
        raise CheckpointError(
            f"{exc.message}; the weights fit {other.describe()} better", fix=f"pass --arch {other.architecture}"
        ) from exc
