"""A tiny temporal CNN bundle (built with onnx.helper, no torch) and windows, for calibration tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from bundle_factory import write_test_bundle
from onnx import TensorProto, helper, numpy_helper

from edge.bundle import Bundle

FRAMES, SIZE, WIDTH = 2, 16, 8


def tiny_model(seed: int = 0) -> onnx.ModelProto:
    """clip (N,T,3,16,16) -> Conv-Relu -> Conv-Relu (+ residual) -> pool -> Gemm -> sigmoid*63: a BDI-II score."""
    rng = np.random.default_rng(seed)

    def init(name: str, array: npt.NDArray[np.floating]) -> TensorProto:
        return numpy_helper.from_array(array.astype(np.float32), name)

    inits = [
        init("w1", rng.normal(0, 0.3, (WIDTH, 3, 3, 3))),
        init("b1", rng.normal(0, 0.1, (WIDTH,))),
        init("w2", rng.normal(0, 0.2, (WIDTH, WIDTH, 3, 3))),
        init("b2", rng.normal(0, 0.1, (WIDTH,))),
        init("wf", rng.normal(0, 0.5, (1, FRAMES * WIDTH))),
        init("bf", np.zeros((1,))),
        init("scale", np.array(63.0)),
        numpy_helper.from_array(np.array([-1, 3, SIZE, SIZE], dtype=np.int64), "frames_shape"),
        numpy_helper.from_array(np.array([-1, FRAMES * WIDTH], dtype=np.int64), "clip_shape"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "score_shape"),
    ]
    nodes = [
        helper.make_node("Reshape", ["clip", "frames_shape"], ["frames"], name="fold_time"),
        helper.make_node("Conv", ["frames", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Add", ["r1", "r2"], ["res"], name="residual"),
        helper.make_node("GlobalAveragePool", ["res"], ["pooled"], name="pool"),
        helper.make_node("Reshape", ["pooled", "clip_shape"], ["features"], name="unfold_time"),
        helper.make_node("Gemm", ["features", "wf", "bf"], ["logit"], name="head", transB=1),
        helper.make_node("Sigmoid", ["logit"], ["unit"], name="squash"),
        helper.make_node("Mul", ["unit", "scale"], ["scaled"], name="to_bdi"),
        helper.make_node("Reshape", ["scaled", "score_shape"], ["score"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_tsm",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["N", FRAMES, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def make_bundle(root: Path) -> Bundle:
    """A valid bundle holding the tiny FP32 model."""
    return write_test_bundle(
        root,
        tiny_model(),
        architecture="tiny-tsm",
        frames=FRAMES,
        size=SIZE,
        parameters=1000,
        macs=300_000,
        intended_use="tests",
        limitation="random weights",
    )


def make_windows(count: int, seed: int = 1) -> list[npt.NDArray[np.uint8]]:
    """Smooth random mosaics (neighbouring windows alike, like frames of one video)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (FRAMES, SIZE, SIZE, 3)).astype(np.float64)
    windows = []
    for _ in range(count):
        base = np.clip(base + rng.normal(0, 25, base.shape), 0, 255)
        windows.append(base.astype(np.uint8))
    return windows
