"""Export steps, each a small callable named for what it makes: an ONNX file from a model, a verdict on it.

``onnx_from_model`` writes FP32 ONNX (legacy TorchScript exporter, BatchNorm folded, dynamic batch) and runs
``onnx.checker``; ``verify_onnx`` runs the file in ONNX Runtime and PyTorch on the same fresh random windows,
normalised exactly as the device normalises them, and compares.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import torch
from torch import nn

from edge.bundle import InputSpec
from edge.errors import AccuracyGateError, BundleError
from edge.preprocess import batch_windows

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
"""Lowest opset we export, and the default."""
OUTPUT_NAME = "score"
"""The ONNX output tensor, and the manifest's name of a model's one output: named for no scale, as a PHQ-9 model
was once called "bdi" (a model of several outputs names each in its ``outputs`` option)."""
TOLERANCE = 1e-4
"""Largest accepted max |ONNX Runtime - PyTorch| over the standard deviation of the PyTorch outputs."""
STD_FLOOR_FRACTION = 1e-3
"""The ratio's denominator is at least this fraction of the output span (see :func:`verify_onnx`)."""


class OnnxExportError(BundleError):
    """``torch.onnx.export`` could not turn the model into ONNX."""


def max_opset() -> int:
    """Highest opset the installed torch's TorchScript exporter (the one we use) supports; 17 if torch hides it."""
    try:
        from torch.onnx import _constants
    except ImportError:  # private module: gone in some future torch
        return DEFAULT_OPSET
    limit = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(_constants, "ONNX_MAX_OPSET", None))
    return limit if isinstance(limit, int) and limit >= DEFAULT_OPSET else DEFAULT_OPSET


def onnx_from_model(
    model: nn.Module, spec: InputSpec, path: str | Path, *, opset: int = DEFAULT_OPSET, output_name: str = OUTPUT_NAME
) -> Path:
    """Export ``model`` (eval mode, BatchNorm folded) to FP32 ONNX at ``path`` with a dynamic batch axis."""
    path = Path(path)
    model.eval()
    example = torch.zeros(spec.shape, dtype=torch.float32)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter announces its successor
        try:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                do_constant_folding=True,
                training=torch.onnx.TrainingMode.EVAL,
                input_names=[spec.name],
                output_names=[output_name],
                dynamic_axes={spec.name: {0: "batch"}, output_name: {0: "batch"}},
            )
        except Exception as exc:  # torch raises many types here; convert them at this boundary
            log.debug("torch.onnx.export failed", exc_info=True)
            cause = (str(exc).strip().splitlines() or [""])[0]
            raise OnnxExportError(
                f"torch.onnx.export could not export {type(model).__name__} at opset {opset}: "
                f"{type(exc).__name__}: {cause}",
                fix=f"try --opset {DEFAULT_OPSET}; for the full traceback run with -vv",
            ) from exc
    onnx.checker.check_model(str(path), full_check=True)
    leftovers = {op: n for op, n in op_counts(path).items() if op in ("BatchNormalization", "Transpose")}
    if leftovers:
        log.warning("ONNX graph %s still holds %s: INT8 will be slower than it could be", path, leftovers)
    return path


def op_counts(path: str | Path) -> Counter[str]:
    """How often each operator type occurs in the ONNX graph at ``path``."""
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def random_windows(spec: InputSpec, count: int, rng: np.random.Generator) -> list[npt.NDArray[np.uint8]]:
    """``count`` uint8 RGB windows ``(T, H, W, 3)`` of blocky random texture, each with its own brightness.

    Blocks and per-window gains make windows differ as real ones do; white noise alone averages out in the
    pooling and would leave the outputs nearly constant.
    """
    windows = []
    block = max(1, spec.height // 8)
    for _ in range(count):
        coarse = rng.uniform(0, 255, (spec.frames, -(-spec.height // block), -(-spec.width // block), 3))
        texture = coarse.repeat(block, axis=1).repeat(block, axis=2)[:, : spec.height, : spec.width]
        gain, offset = rng.uniform(0.2, 1.0), rng.uniform(0, 80)
        noise = rng.normal(0, 8, texture.shape)
        windows.append(np.clip(texture * gain + offset + noise, 0, 255).astype(np.uint8))
    return windows


@dataclass(frozen=True)
class Verification:
    """How closely ONNX Runtime reproduced PyTorch."""

    windows: int
    max_abs_diff: float
    output_std: float
    std_floor: float
    tolerance: float

    @property
    def denominator(self) -> float:
        """What the ratio divides by: the output standard deviation, or the floor when that is larger."""
        return max(self.output_std, self.std_floor)

    @property
    def ratio(self) -> float:
        """``max_abs_diff / denominator``."""
        return self.max_abs_diff / self.denominator

    @property
    def passed(self) -> bool:
        """Whether the ratio is within tolerance."""
        return self.ratio <= self.tolerance

    def describe(self) -> str:
        """One line for people."""
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"ONNX Runtime vs PyTorch on {self.windows} random windows: max |diff| {self.max_abs_diff:.3g} / "
            f"max(output std {self.output_std:.3g}, {self.std_floor:.3g}) = ratio {self.ratio:.3g} "
            f"(limit {self.tolerance:g}): {verdict}"
        )


def verify_onnx(
    path: str | Path,
    model: nn.Module,
    spec: InputSpec,
    *,
    windows: int = 8,
    batch: int = 2,
    tolerance: float = TOLERANCE,
    output_span: float = 63.0,
    seed: int | None = None,
) -> Verification:
    """Compare ONNX Runtime with PyTorch on fresh random windows in batches of ``batch``; raise when too far apart.

    The ratio's denominator is the outputs' standard deviation, but at least ``STD_FLOOR_FRACTION`` of
    ``output_span`` (0.063 on the BDI-II scale): random-weight models can have near-constant outputs, whose spread
    would otherwise measure float rounding only. The result records the floor, so reports can print both.
    """
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    model.eval()
    ours, theirs = [], []
    for start in range(0, windows, batch):
        inputs = batch_windows(random_windows(spec, min(batch, windows - start), rng), spec)
        with torch.no_grad():
            ours.append(model(torch.from_numpy(inputs)).numpy().reshape(-1))
        theirs.append(np.asarray(session.run(None, {input_name: inputs})[0]).reshape(-1))
    reference, candidate = np.concatenate(ours), np.concatenate(theirs)
    max_diff = float(np.max(np.abs(reference.astype(np.float64) - candidate)))
    std = float(np.std(reference))
    result = Verification(windows, max_diff, std, STD_FLOOR_FRACTION * output_span, tolerance)
    if not result.passed:
        raise AccuracyGateError(
            f"{path}: {result.describe()}",
            fix="no bundle was written; find the operator that drifts (python -m export onnx -vv) and report it",
        )
    return result
