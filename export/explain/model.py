"""What ``python -m export explain MODEL`` attributes: a bundle (occlusion through its backend), a bundle plus the
checkpoint it was exported from (the manifest's SHA-256 must match; gradient methods), or a checkpoint alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edge.bundle import load_bundle
from edge.bundle.loader import sha256_of
from edge.errors import BundleError, UsageError
from edge.scale import NamedScale
from export.explain.methods import GRADIENT_METHODS, METHODS, Gradient, Method, Occlusion

if TYPE_CHECKING:
    from torch import nn


def model_outputs(model: Path) -> tuple[NamedScale, ...]:
    """The outputs of ``model``, primary first: a bundle's manifest, or a training checkpoint's ``outputs`` option
    (one output on its ``scale`` when none is named)."""
    from export.checkpoint import read_checkpoint
    from export.zoo import named_outputs, scale_option

    if model.is_dir():
        return load_bundle(model).outputs
    if not model.is_file():
        raise UsageError(f"model {model} does not exist", fix="pass a bundle directory or a checkpoint file")
    options = read_checkpoint(model).hints.get("options") or {}
    return named_outputs(options) or (NamedScale("score", scale_option(options)),)


def output_index(outputs: Sequence[NamedScale], name: str | None, model: Path) -> int:
    """The column of the output called ``name`` (None: the primary, 0)."""
    names = [output.name for output in outputs]
    if name is None:
        return 0
    if name not in names:
        raise UsageError(f"model {model} has no output {name!r}", fix=f"pass --output with one of: {', '.join(names)}")
    return names.index(name)


def open_method(
    model: Path, *, checkpoint: Path | None, method: str | None, backend: str = "auto", output: int = 0
) -> Method:
    """The attribution method for column ``output`` (:func:`output_index`) of ``model`` (a bundle directory or a
    checkpoint file); ``method=None`` picks DeepLift when PyTorch weights are at hand and occlusion otherwise."""
    if method is not None and method not in METHODS:
        raise UsageError(f"unknown method {method!r}", fix=f"choose one of: {', '.join(METHODS)}")
    if model.is_dir():
        return _from_bundle(model, checkpoint, method, backend, output)
    if not model.is_file():
        raise UsageError(f"model {model} does not exist", fix="pass a bundle directory or a checkpoint file")
    if checkpoint is not None:
        raise UsageError("--checkpoint goes with a bundle MODEL", fix="pass the bundle directory as MODEL")
    return _from_checkpoint(model, method, output)


def _from_bundle(root: Path, checkpoint: Path | None, method: str | None, backend: str, output: int) -> Method:
    bundle = load_bundle(root)
    spec, tiles = bundle.input, bundle.tiles
    if checkpoint is None:
        if method in GRADIENT_METHODS:
            raise UsageError(
                f"method {method!r} needs the PyTorch weights; bundle {root} holds only ONNX",
                fix="pass --checkpoint CKPT (the one the bundle was exported from), or --method occlusion",
            )
        from edge.backends import create

        runner = create(backend, bundle)
        return Occlusion(spec, tiles, lambda batch: runner.infer_outputs(batch)[:, output])
    model_section = bundle.manifest["model"]
    expected = (model_section.get("weights") or {}).get("checkpoint_sha256")
    found = sha256_of(checkpoint)
    if expected != found:
        raise BundleError(
            f"checkpoint {checkpoint} (SHA-256 {found[:12]}...) is not the one bundle {root} was exported from "
            f"({str(expected)[:12]}...)",
            fix="pass the checkpoint named in the manifest's model.weights, or explain the bundle alone (occlusion)",
        )
    options = model_section.get("architecture_options")
    torch_model = _load(checkpoint, model_section["architecture"], options, spec.frames, spec.height, output)
    return _method(spec, tiles, torch_model, method or "deeplift")


def _from_checkpoint(path: Path, method: str | None, output: int) -> Method:
    from export.checkpoint import read_checkpoint
    from export.dataset import default_spec
    from export.zoo import get_architecture

    raw = read_checkpoint(path)
    missing = [key for key in ("architecture", "frames", "size") if key not in raw.hints]
    if missing:
        raise UsageError(
            f"checkpoint {path} does not say its {', '.join(missing)}",
            fix="pass the bundle exported from it as MODEL and the checkpoint with --checkpoint",
        )
    arch = get_architecture(str(raw.hints["architecture"]))
    frames, size = int(raw.hints["frames"]), int(raw.hints["size"])
    spec, tiles = default_spec(arch.layout, frames=frames, size=size)
    torch_model = _load(raw, arch.name, raw.hints.get("options"), frames, size, output)
    return _method(spec, tiles, torch_model, method or "deeplift")


def _load(
    checkpoint: Any, architecture: str, options: dict[str, Any] | None, frames: int, size: int, output: int
) -> nn.Module:
    from export.checkpoint import load_checkpoint
    from export.zoo import get_architecture

    arch = get_architecture(architecture)
    model = arch.build(frames, size, options)
    load_checkpoint(model, checkpoint, arch)
    return output_column(model, output).eval()


def output_column(model: nn.Module, output: int = 0) -> nn.Module:
    """The model itself, or for a zoo head of several outputs a module returning its column ``output`` ``(N,)``:
    explanations attribute one score per window."""
    from torch import nn

    if len(getattr(model, "output_range", ())) <= 1:
        return model

    class OutputColumn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, windows: Any) -> Any:
            return self.model(windows)[:, output]

    return OutputColumn()


def _method(spec: Any, tiles: Any, model: nn.Module, name: str) -> Method:
    if name == "occlusion":
        return Occlusion(spec, tiles, torch_infer(model))
    return Gradient(spec, tiles, model, name)


def torch_infer(model: nn.Module) -> Any:
    """A numpy-in, numpy-out scoring function around a PyTorch model."""
    import torch

    def infer(batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        with torch.no_grad():
            return model(torch.from_numpy(np.ascontiguousarray(batch))).reshape(-1).numpy()

    return infer
