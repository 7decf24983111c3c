"""Multiply-accumulates per window, counted from an ONNX graph's convolutions and matrix products.

ONNX shape inference with the batch fixed to one gives every tensor's shape; a Conv costs (output elements) x
(input channels per group) x (kernel elements), a Gemm or MatMul (output elements) x (shared dimension).
Element-wise operations, pooling and the temporal shift are ignored: they are a rounding error.
"""

from __future__ import annotations

import math
from pathlib import Path

import onnx
from onnx import shape_inference

_CONV_WEIGHT_INPUT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
_MATMUL = ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul")


def _with_batch_one(model: onnx.ModelProto) -> onnx.ModelProto:
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for value in fixed.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    return shape_inference.infer_shapes(fixed)


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {init.name: tuple(init.dims) for init in model.graph.initializer}
    graph = model.graph
    for value in (*graph.input, *graph.value_info, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    for node in graph.node:  # Constant nodes (weights when folding kept them as nodes)
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = tuple(attr.t.dims)
    return shapes


def _node_macs(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int:
    out = shapes.get(node.output[0])
    if out is None:
        return 0
    if node.op_type in _CONV_WEIGHT_INPUT:
        weight = shapes.get(node.input[_CONV_WEIGHT_INPUT[node.op_type]])
        return math.prod(out) * math.prod(weight[1:]) if weight else 0
    if node.op_type in _MATMUL:
        first = shapes.get(node.input[0])
        if first is None:
            return 0
        trans_a = any(a.name == "transA" and a.i for a in node.attribute)
        shared = first[0] if trans_a and node.op_type == "Gemm" else first[-1]
        return math.prod(out) * shared
    return 0


def macs_of_onnx(model: str | Path | onnx.ModelProto) -> int:
    """Multiply-accumulates of one inference with batch 1 (one window) of an ONNX model."""
    proto = onnx.load(str(model)) if isinstance(model, str | Path) else model
    inferred = _with_batch_one(proto)
    shapes = _shapes(inferred)
    return sum(_node_macs(node, shapes) for node in inferred.graph.node)
