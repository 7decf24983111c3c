"""Attribution methods behind one interface: a window in, its score and per-frame, per-tile attribution out.

``occlusion`` is the device's own (:mod:`edge.explain.occlusion`: one tile in one frame greyed at a time; the
region shares are the ones the device publishes, and every frame is occluded for the per-frame curve), and needs
only something that scores windows: a bundle's backend or a PyTorch model. The gradient methods run Captum
on the PyTorch model: ``deeplift`` (the default: one backward pass against a baseline, as Expresso-AI does; its
signed attributions add up to the score's distance from the baseline's score, and pooling takes their absolute
values, as Expresso-AI does, so opposite contributions inside a tile do not cancel), ``saliency``,
``integrated-gradients`` and ``noise-tunnel`` (SmoothGrad on Integrated Gradients). The baseline of every method is
zero in normalised space: the normalisation's mean colour, the same baseline occlusion uses.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edge.bundle import InputSpec, Tile
from edge.explain.occlusion import Infer, occluded_frames, occlusion_deltas, window_frames
from export.explain.pooling import FloatArray, frame_maps, tile_sums

if TYPE_CHECKING:
    from torch import nn

GRADIENT_METHODS = ("deeplift", "saliency", "integrated-gradients", "noise-tunnel")
METHODS = (*GRADIENT_METHODS, "occlusion")
IG_STEPS = 16
NOISE_SAMPLES, NOISE_SD = 8, 0.2


class Method(ABC):
    """Attributes one normalised window ``(1, ...)`` to frames and mosaic tiles."""

    name: str

    def __init__(self, spec: InputSpec, tiles: Sequence[Tile]) -> None:
        self.spec = spec
        self.tiles = tuple(tiles)

    @abstractmethod
    def attribute(self, window: npt.NDArray[np.float32]) -> tuple[float, FloatArray]:
        """The window's score and its attribution per frame and tile ``(T, len(tiles))``, non-negative."""


class Occlusion(Method):
    """The device's occlusion (:class:`edge.explain.occlusion.OcclusionExplainer`): one tile in one frame greyed at a
    time. Every frame is occluded here for the per-frame curve; each tile's total over the frames the device
    occludes is the device's value, so the region shares are the device's, and it is spread over all frames in
    proportion to their changes."""

    name = "occlusion"

    def __init__(self, spec: InputSpec, tiles: Sequence[Tile], infer: Infer) -> None:
        super().__init__(spec, tiles)
        self.infer = infer

    def attribute(self, window: npt.NDArray[np.float32]) -> tuple[float, FloatArray]:
        layout = self.spec.layout
        count = window_frames(window, layout)
        score = float(self.infer(window)[0])
        frames = occlusion_deltas(self.infer, window, self.tiles, range(count), layout=layout, score=score)
        device = frames[:, list(occluded_frames(count))].sum(axis=1, keepdims=True)  # (R, 1): the device's value
        totals = frames.sum(axis=1, keepdims=True)
        weights = np.divide(frames, totals, out=np.full_like(frames, 1.0 / count), where=totals > 0)
        return score, (weights * device).T


class Gradient(Method):
    """A Captum attribution of the PyTorch model's score, pooled as ``|attribution|`` per tile and frame."""

    def __init__(self, spec: InputSpec, tiles: Sequence[Tile], model: nn.Module, name: str) -> None:
        super().__init__(spec, tiles)
        self.name = name
        self.model = _attributable(model)
        self._captum = _captum_method(self.model, name)

    def attribute(self, window: npt.NDArray[np.float32]) -> tuple[float, FloatArray]:
        import torch

        inputs = torch.from_numpy(np.ascontiguousarray(window)).requires_grad_(True)
        with torch.no_grad():
            score = float(self.model(inputs).reshape(-1)[0])
        kwargs: dict[str, object] = {}
        if self.name in ("deeplift", "integrated-gradients", "noise-tunnel"):
            kwargs["baselines"] = torch.zeros_like(inputs)
        if self.name == "integrated-gradients":
            kwargs["n_steps"] = IG_STEPS
        if self.name == "noise-tunnel":
            kwargs.update(nt_type="smoothgrad", nt_samples=NOISE_SAMPLES, stdevs=NOISE_SD, n_steps=IG_STEPS)
        with warnings.catch_warnings():  # DeepLift says it hooks the non-linearities, every call
            warnings.filterwarnings("ignore", "Setting forward, backward hooks", UserWarning)
            attribution = self._captum.attribute(inputs, **kwargs)
        maps = frame_maps(attribution.detach().numpy(), self.spec.layout)
        return score, tile_sums(maps, self.tiles)


def _attributable(model: nn.Module) -> nn.Module:
    """The model in eval mode with every ReLU out of place (Captum's hooks cannot follow in-place ones)."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return model.eval()


def _captum_method(model: nn.Module, name: str) -> Any:
    from captum.attr import DeepLift, IntegratedGradients, NoiseTunnel, Saliency

    if name == "deeplift":
        return DeepLift(model)
    if name == "saliency":
        return Saliency(model)
    if name == "integrated-gradients":
        return IntegratedGradients(model)
    return NoiseTunnel(IntegratedGradients(model))
