"""Explicit INT8 (QuantizeLinear/DequantizeLinear) ONNX models from ONE set of calibrated ranges.

Ranges come from onnxruntime.quantization's calibrators (MinMax, Percentile, Entropy via ``create_calibrator``);
this module never computes a range itself. Both variants below are written from the same ranges, so the
TensorRT model, the ONNX Runtime model and the TensorRT calibration table agree.

Placement rules, TensorRT variant (``target = "tensorrt"``), after NVIDIA's "Q/DQ layer-placement
recommendations":

1. Quantize the inputs of weighted operations only (Conv, ConvTranspose, Gemm, MatMul): a Q/DQ pair on the
   activation input, per-channel int8 weights behind a DequantizeLinear (axis 0 = output channels for Conv).
2. Do not quantize their outputs (``OpTypesToExcludeOutputQuantization``): no Q/DQ sits between a Conv and the
   ReLU/Clip/BatchNorm/bias that follow, so TensorRT fuses conv + bias + activation and folds the next layer's
   input Q into that kernel's int8 output.
3. Activations symmetric int8 with zero point 0 (``ActivationSymmetric``, QInt8): TensorRT accepts no other.
4. Bias stays float (``QuantizeBias`` off): TensorRT quantizes it itself when it fuses the convolution.
5. One shared Q/DQ pair per tensor (``DedicatedQDQPair`` off): a tensor feeding several convolutions has one scale.
6. Add, Concat, pooling, Reshape/Slice (the temporal shift) are left unquantized: TensorRT propagates Q/DQ
   through data-movement ops and runs element-wise adds inside the fused kernels; quantizing both inputs of a
   residual Add would put a Q/DQ on a Conv output and break rule 2.
7. The head stays in float (both variants): the last weighted op and everything after it (pooling, the
   regression layer, the scaling to BDI-II). It costs almost nothing, and a score quantized to 256 levels
   would step by a sizeable share of the 1% accuracy budget.

ONNX Runtime CPU variant (``target = "onnxruntime-cpu"``): every operator ORT has a QDQ kernel for, uint8
activations (QUInt8, asymmetric) with int8 per-channel weights and int32 bias. ORT's CPU kernels need uint8
activations: with int8 activations it leaves convolutions in FP32 (see FIELD-NOTES).

NVIDIA ModelOpt's ONNX PTQ is an alternative for the TensorRT side; it is not a dependency of this package.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    TensorsData,
    create_calibrator,
    quantize_static,
    save_tensors_data,
)

from edge.errors import InputError, UsageError

log = logging.getLogger(__name__)

METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
    "entropy": CalibrationMethod.Entropy,
}
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
CHUNK_WINDOWS = 8
"""Windows per calibrator pass: histogram calibrators hold every intermediate tensor of one pass in memory."""


@dataclass(frozen=True)
class Variant:
    """How one target wants its Q/DQ model."""

    target: str
    activation_type: QuantType
    op_types: tuple[str, ...] | None
    extra_options: dict[str, Any] = field(default_factory=dict)


TENSORRT = Variant(
    target="tensorrt",
    activation_type=QuantType.QInt8,
    op_types=WEIGHTED_OPS,
    extra_options={
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "DedicatedQDQPair": False,
        "OpTypesToExcludeOutputQuantization": list(WEIGHTED_OPS),
    },
)
ONNXRUNTIME_CPU = Variant(
    target="onnxruntime-cpu",
    activation_type=QuantType.QUInt8,
    op_types=None,
    extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
)


class BatchReader(CalibrationDataReader):
    """Feeds normalised batches to an onnxruntime calibrator under the model's input name."""

    def __init__(self, input_name: str, batches: Iterable[npt.NDArray[np.float32]]) -> None:
        self._input_name = input_name
        self._batches: Iterator[npt.NDArray[np.float32]] = iter(batches)

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        """The next ``{input: batch}`` or None when done."""
        batch = next(self._batches, None)
        return None if batch is None else {self._input_name: batch}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime.quantization prints progress on stdout and warns on the root logger: keep stdout for reports
    (``--json``) and show its warnings only with ``-vv``."""
    root = logging.getLogger()
    level = root.level
    if not log.isEnabledFor(logging.DEBUG):
        root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        root.setLevel(level)


def method_of(name: str) -> CalibrationMethod:
    """The onnxruntime calibration method for ``minmax``, ``percentile`` or ``entropy``."""
    if name not in METHODS:
        raise UsageError(f"unknown calibration method {name!r}", fix=f"choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def input_name(model_path: Path) -> str:
    """The name of the model's (single) graph input."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    inputs = [value.name for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise InputError(f"{model_path} has inputs {inputs}; expected one window input", fix="re-export the model")
    return inputs[0]


def _chunks(batches: Iterable[npt.NDArray[np.float32]], size: int) -> Iterator[list[npt.NDArray[np.float32]]]:
    chunk: list[npt.NDArray[np.float32]] = []
    for batch in batches:
        chunk.append(batch)
        if sum(len(b) for b in chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def calibrate_ranges(
    model_path: Path, batches: Iterable[npt.NDArray[np.float32]], *, method: str = "minmax"
) -> TensorsData:
    """One set of activation ranges for every float tensor of ``model_path``, from onnxruntime's calibrator.

    Ranges are asymmetric ``(low, high)``; each variant derives its own scales and zero points from them.
    """
    name = input_name(model_path)
    seen = 0
    with tempfile.TemporaryDirectory(prefix="expresso-calib-") as tmp, _quiet():
        calibrator = create_calibrator(
            model_path,
            None,
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=method_of(method),
            extra_options={"symmetric": False},
        )
        for chunk in _chunks(batches, CHUNK_WINDOWS):
            seen += sum(len(b) for b in chunk)
            calibrator.collect_data(BatchReader(name, chunk))
        if not seen:
            raise InputError(
                "the calibration set gave no windows",
                fix="collect windows with `python -m calibration collect` from videos where a face is visible",
            )
        ranges = calibrator.compute_data()
    log.info("calibrated %d tensors on %d windows with %s", len(ranges.data), seen, method)
    return ranges


def amax_of(ranges: TensorsData) -> dict[str, float]:
    """Absolute maximum per tensor (what a symmetric int8 scale is made from)."""
    result = {}
    for name, data in ranges.items():
        low, high = data.range_value
        result[name] = float(max(np.max(np.abs(low)), np.max(np.abs(high))))
    return result


def ranges_of(ranges: TensorsData) -> dict[str, tuple[float, float]]:
    """``(low, high)`` per tensor as plain floats."""
    return {name: (float(np.min(d.range_value[0])), float(np.max(d.range_value[1]))) for name, d in ranges.items()}


def head_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes after which no weighted op follows: the last Conv/Gemm and the rest of the head."""
    consumers: dict[str, list[int]] = {}
    for index, node in enumerate(model.graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append(index)
    nodes = list(model.graph.node)
    feeds_weighted: list[bool | None] = [None] * len(nodes)

    def reaches(index: int) -> bool:
        if feeds_weighted[index] is None:
            feeds_weighted[index] = False
            after = {c for out in nodes[index].output for c in consumers.get(out, [])}
            feeds_weighted[index] = any(nodes[c].op_type in WEIGHTED_OPS or reaches(c) for c in after)
        return bool(feeds_weighted[index])

    return [node.name for index, node in enumerate(nodes) if not reaches(index)]


def prepare(model_path: Path) -> onnx.ModelProto:
    """The model as the quantizer needs it: every node named, and Identity copies of initializers (how
    torch.onnx shares equal biases) folded into initializers, so each Conv's bias can be quantized and fused.
    Tensor names do not change, so calibrated ranges still apply."""
    model = onnx.load(str(model_path))
    initializers = {init.name: init for init in model.graph.initializer}
    kept = []
    for index, node in enumerate(model.graph.node):
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
            continue
        if not node.name:
            node.name = f"{node.op_type}_{index}"
        kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def quantize_variant(model_path: Path, out_path: Path, ranges: TensorsData, variant: Variant) -> Path:
    """Write the Q/DQ model of ``variant`` from ``ranges`` (no recalibration: the ranges go in as ORT's cache)."""
    model = prepare(model_path)
    with tempfile.TemporaryDirectory(prefix="expresso-qdq-") as tmp, _quiet():
        cache = Path(tmp) / "ranges.json"
        save_tensors_data(ranges, cache)
        quantize_static(
            model,
            str(out_path),
            None,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(variant.op_types) if variant.op_types else None,
            nodes_to_exclude=head_nodes(model),
            per_channel=True,
            activation_type=variant.activation_type,
            weight_type=QuantType.QInt8,
            calibrate_method=ranges.calibration_method,
            extra_options=dict(variant.extra_options),
            calibration_cache_path=cache,
        )
    onnx.checker.check_model(str(out_path))
    return out_path


def quantize_default(model_path: Path, out_path: Path, batches: Sequence[npt.NDArray[np.float32]]) -> Path:
    """onnxruntime's ``quantize_static`` with every default (the baseline the variants must beat)."""
    with _quiet():
        quantize_static(str(model_path), str(out_path), BatchReader(input_name(model_path), batches))
    return out_path
