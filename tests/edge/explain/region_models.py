"""Hand-built ONNX models (onnx.helper, no torch) whose region attribution is known in advance."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import onnx
from bundle_factory import write_test_bundle
from onnx import TensorProto, helper

from edge.bundle import Bundle
from edge.layout import default_regions_section

FRAMES, SIZE = 2, 32


def tile_of(region: str, size: int = SIZE) -> dict[str, int]:
    """The default mosaic's tile of ``region`` at ``size``."""
    return next(t for t in default_regions_section(size)["tiles"] if t["region"] == region)


def energy_model(weights: Mapping[str, float], *, frame: int | None = None, offset: float = 5.0) -> onnx.ModelProto:
    """score = offset + sum over regions of weight x mean(x^2) inside that region's tile (NTCHW input).

    With ``frame`` only that frame of each tile is read. Occluding a tile (zeros) removes exactly its term.
    """
    nodes, inits, terms = [], [], []
    t0, t1 = (0, FRAMES) if frame is None else (frame, frame + 1)
    for i, (region, weight) in enumerate(weights.items()):
        tile = tile_of(region)
        starts = [t0, tile["y"], tile["x"]]
        ends = [t1, tile["y"] + tile["height"], tile["x"] + tile["width"]]
        inits += [
            helper.make_tensor(f"s{i}", TensorProto.INT64, [3], starts),
            helper.make_tensor(f"e{i}", TensorProto.INT64, [3], ends),
            helper.make_tensor(f"w{i}", TensorProto.FLOAT, [], [weight]),
        ]
        nodes += [
            helper.make_node("Slice", ["clip", f"s{i}", f"e{i}", "slice_axes"], [f"crop{i}"]),
            helper.make_node("Mul", [f"crop{i}", f"crop{i}"], [f"sq{i}"]),
            helper.make_node("ReduceMean", [f"sq{i}", "mean_axes"], [f"m{i}"], keepdims=0),
            helper.make_node("Mul", [f"m{i}", f"w{i}"], [f"term{i}"]),
        ]
        terms.append(f"term{i}")
    nodes.append(helper.make_node("Sum", [*terms, "offset"], ["score"]))
    inits += [
        helper.make_tensor("slice_axes", TensorProto.INT64, [3], [1, 3, 4]),
        helper.make_tensor("mean_axes", TensorProto.INT64, [4], [1, 2, 3, 4]),
        helper.make_tensor("offset", TensorProto.FLOAT, [], [offset]),
    ]
    graph = helper.make_graph(
        nodes,
        "region_energy",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["N", FRAMES, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def energy_bundle(root: Path, weights: Mapping[str, float], *, frame: int | None = None) -> Bundle:
    """A bundle around :func:`energy_model`."""
    return write_test_bundle(
        root,
        energy_model(weights, frame=frame),
        architecture="region-energy",
        frames=FRAMES,
        size=SIZE,
        parameters=len(weights),
        macs=FRAMES * 3 * SIZE * SIZE,
        intended_use="tests of region attribution",
        limitation="not a model: reads chosen tiles only",
    )
