"""The model zoo: one module per architecture, each registering itself by name with its input layout.

An architecture's builder takes the window length ``frames``, the square frame side ``size`` and its own keyword
options and returns an ``nn.Module`` mapping a batch of windows in its layout to severities ``(N,)``.
Every architecture has the options ``scale`` (the output's scale, as ``edge.scale`` names it: ``BDI-II``, ``PHQ-9``,
``PHQ-8`` or ``custom:MIN:MAX``; its range bounds the head) and ``head``: ``sigmoid`` (a scaled sigmoid bounds the
output to the range, what the zoo trains) or ``linear`` (a plain regression, as most researchers train with MSE on
raw scores; clipped to the range in eval mode, hence in the exported model, and left free in training so its
gradients never vanish). The option ``outputs`` (a list of ``NAME:SCALE``, e.g. ``["bdi_ii:bdi-ii", "phq9:phq-9"]``;
empty by default: one output on ``scale``) gives the head one column per named output, each bounded to its own
scale, so the model returns ``(N, K)``; the first is the primary output (``docs/model-intake.md``).
(Knowing ``size`` lets a model reshape with constant shapes, so its ONNX graph has no shape arithmetic.)
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from edge.errors import UsageError
from edge.scale import BDI_II, NamedScale, Scale, parse_scale

Builder = Callable[..., nn.Module]
OptionsFromShapes = Callable[[dict[str, tuple[int, ...]]], dict[str, Any]]

DEFAULT_ARCHITECTURE = "expresso-tsm"
DEFAULT_SCALE = BDI_II.name
"""The scale of checkpoints and manifests that name none (everything written before scales were named)."""


HEADS = ("sigmoid", "linear")
DEFAULT_HEAD = "sigmoid"


def scale_option(options: dict[str, Any]) -> Scale:
    """The primary output's scale the options name: the first of ``outputs``, else ``scale`` (the default for
    options written before scales were named)."""
    named = named_outputs(options)
    return named[0].scale if named else parse_scale(str(options.get("scale", DEFAULT_SCALE)))


def head_range(scale: str) -> tuple[float, float]:
    """The range a head is bounded to, from the ``scale`` option."""
    parsed = parse_scale(scale)
    return parsed.low, parsed.high


def named_outputs(options: dict[str, Any]) -> tuple[NamedScale, ...]:
    """The outputs the options name (``outputs``: ``NAME:SCALE`` strings); none named: one on ``scale``."""
    named = []
    for text in options.get("outputs") or ():
        name, _, scale = str(text).partition(":")
        if not name or not scale:
            raise UsageError(f"output {text!r} is not NAME:SCALE", fix="name outputs like bdi_ii:bdi-ii phq9:phq-9")
        named.append(NamedScale(name, parse_scale(scale)))
    if len({o.name for o in named}) != len(named):
        raise UsageError(f"outputs {list(options['outputs'])} repeat a name", fix="give each output its own name")
    return tuple(named)


def head_ranges(scale: str, outputs: Sequence[str] = ()) -> tuple[tuple[float, float], ...]:
    """The range of each head column: the ``outputs`` option's scales, or the ``scale`` option's for one column."""
    named = named_outputs({"outputs": list(outputs)})
    return tuple((o.scale.low, o.scale.high) for o in named) if named else (head_range(scale),)


def score_head(
    logit: torch.Tensor, head: str, output_range: Sequence[tuple[float, float]], *, training: bool
) -> torch.Tensor:
    """``(N, K)`` head outputs to severities, each column in its range: a scaled sigmoid, or linear and clipped to the
    range in eval; ``(N,)`` for one column (one output), ``(N, K)`` for several."""
    if len(output_range) == 1:
        ((low, high),) = output_range
        if head == "sigmoid":
            scaled = torch.sigmoid(logit) * (high - low)
            return (scaled + low if low else scaled).flatten()
        return logit.flatten() if training else logit.flatten().clamp(low, high)
    columns = [score_head(logit[:, i], head, [bounds], training=training) for i, bounds in enumerate(output_range)]
    return torch.stack(columns, dim=1)  # column by column: each bound stays a plain number (no traced constants)


@dataclass(frozen=True)
class Architecture:
    """One zoo entry: how to build it, its input layout and what its options default to."""

    name: str
    layout: str
    builder: Builder
    description: str
    defaults: dict[str, Any] = field(default_factory=dict)
    head_keys: tuple[str, ...] = ()
    """State-dict keys of the regression head, re-initialised when a checkpoint's head has another shape."""
    min_size: int = 16
    """Smallest input height/width the architecture's strides allow."""
    torchvision: bool = False
    """Whether its state_dict keys and shapes follow ``torchvision.models.video`` (Kinetics checkpoints load)."""
    options_from_shapes: OptionsFromShapes | None = None
    """Reads width/depth options off a state_dict's key shapes (for ``--arch`` inference); None: defaults only."""

    def options(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The defaults with ``overrides`` applied; unknown option names are refused with the valid ones."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            valid = ", ".join(sorted(self.defaults)) or "none"
            raise UsageError(
                f"architecture {self.name!r} has no option {', '.join(unknown)}", fix=f"use one of: {valid}"
            )
        if overrides.get("head", DEFAULT_HEAD) not in HEADS:
            raise UsageError(f"unknown head {overrides['head']!r}", fix=f"pass --head {' or --head '.join(HEADS)}")
        scale_option(overrides)  # an unknown scale is refused here, naming the known ones
        named_outputs(overrides)
        return {**self.defaults, **overrides}

    def build(self, frames: int, size: int, options: dict[str, Any] | None = None) -> nn.Module:
        """A freshly initialised model for windows of ``frames`` frames of ``size`` x ``size`` pixels, in eval mode."""
        if frames < 1:
            raise UsageError(f"a window needs at least one frame, got {frames}", fix="pass --frames 16, 32 or 64")
        if size < self.min_size:
            raise UsageError(
                f"architecture {self.name!r} needs frames of at least {self.min_size} pixels, got {size}",
                fix=f"pass --size {self.min_size} or more",
            )
        model = self.builder(frames=frames, size=size, **self.options(options))
        return model.eval()


_REGISTRY: dict[str, Architecture] = {}


def register(
    name: str,
    *,
    layout: str,
    description: str,
    defaults: dict[str, Any] | None = None,
    head_keys: tuple[str, ...] = (),
    min_size: int = 16,
    torchvision: bool = False,
    options_from_shapes: OptionsFromShapes | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(frames=..., size=..., **options)`` as architecture ``name``."""
    if layout not in ("NTCHW", "NCTHW"):
        raise ValueError(f"layout must be NTCHW or NCTHW, not {layout!r}")

    def decorate(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is registered twice")
        common = {"head": DEFAULT_HEAD, "scale": DEFAULT_SCALE, "outputs": []}
        _REGISTRY[name] = Architecture(
            name, layout, builder, description, {**(defaults or {}), **common},
            head_keys, min_size, torchvision, options_from_shapes,
        )  # fmt: skip
        return builder

    return decorate


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def architectures() -> dict[str, Architecture]:
    """Every registered architecture by name, the default first."""
    _discover()
    return {name: _REGISTRY[name] for name in sorted(_REGISTRY, key=lambda n: (n != DEFAULT_ARCHITECTURE, n))}


def get_architecture(name: str) -> Architecture:
    """The architecture called ``name``; an unknown name is refused with the list of known ones."""
    known = architectures()
    if name not in known:
        raise UsageError(f"unknown architecture {name!r}", fix=f"choose one of: {', '.join(known)}")
    return known[name]
