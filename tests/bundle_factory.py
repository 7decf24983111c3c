"""Write a valid model bundle around a hand-built ONNX graph: the manifest fixture the test helpers share."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx

from edge.bundle import Bundle, write_manifest
from edge.layout import default_input_section, default_regions_section


def write_test_bundle(
    root: Path,
    model: onnx.ModelProto,
    *,
    architecture: str,
    frames: int,
    size: int,
    parameters: int,
    macs: int,
    intended_use: str,
    limitation: str,
    outputs: Sequence[dict[str, Any]] = (),
) -> Bundle:
    """Save ``model`` as the bundle's FP32 ONNX (NTCHW input) and write a manifest for it: with ``outputs``, a
    manifest of those outputs; without, one BDI-II ``output`` as manifests were written before ``outputs``."""
    root.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(root / "model.onnx"))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    manifest = {
        "model": {
            "name": "tiny-test",
            "version": "0",
            "architecture": architecture,
            "weights": {"source": "random", "note": "test fixture"},
            "parameters": parameters,
            "macs_per_window": macs,
        },
        "input": default_input_section(layout="NTCHW", frames=frames, size=size),
        "regions": default_regions_section(size),
        **(
            {"outputs": list(outputs)}
            if outputs
            else {"output": {"name": "score", "units": "BDI-II", "range": [0.0, 63.0]}}
        ),
        "artifacts": [{"path": "model.onnx", "kind": "onnx", "precision": "fp32", "target": "any", "opset": opset}],
        "model_card": {
            "intended_use": intended_use,
            "not_a_diagnostic_device": True,
            "training_data": "none",
            "limitations": [limitation],
        },
    }
    return write_manifest(root, manifest)


def two_region_bundle(root: Path, *, frames: int = 4, size: int = 32) -> Bundle:
    """A bundle of two outputs: ``mouthy`` (BDI-II) reads only the mouth tile, ``eyey`` (PHQ-9) only the right eye
    (each the mean of its tile's squared values, every frame), so each output's region attribution is known."""
    from onnx import TensorProto, helper

    tiles = default_regions_section(size)["tiles"]
    nodes, inits, columns = [], [], []
    for i, region in enumerate(("mouth", "right_eye")):
        tile = next(t for t in tiles if t["region"] == region)
        y, x, height, width = (tile[key] for key in ("y", "x", "height", "width"))
        inits += [
            helper.make_tensor(f"s{i}", TensorProto.INT64, [2], [y, x]),
            helper.make_tensor(f"e{i}", TensorProto.INT64, [2], [y + height, x + width]),
        ]
        nodes += [
            helper.make_node("Slice", ["clip", f"s{i}", f"e{i}", "axes"], [f"crop{i}"]),
            helper.make_node("Mul", [f"crop{i}", f"crop{i}"], [f"sq{i}"]),
            helper.make_node("ReduceMean", [f"sq{i}", "mean_axes"], [f"col{i}"], keepdims=1),
            helper.make_node("Reshape", [f"col{i}", "column"], [f"c{i}"]),
        ]
        columns.append(f"c{i}")
    nodes.append(helper.make_node("Concat", columns, ["scores"], axis=1))
    inits += [
        helper.make_tensor("axes", TensorProto.INT64, [2], [3, 4]),
        helper.make_tensor("mean_axes", TensorProto.INT64, [4], [1, 2, 3, 4]),
        helper.make_tensor("column", TensorProto.INT64, [2], [-1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_regions",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["N", frames, 3, size, size])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    outputs = [
        {"name": "mouthy", "units": "BDI-II", "range": [0.0, 63.0]},
        {"name": "eyey", "units": "PHQ-9", "range": [0.0, 27.0]},
    ]
    return write_test_bundle(root, model, architecture="two-regions", frames=frames, size=size, parameters=0, macs=1,
                             intended_use="tests of explanations per output", limitation="reads two tiles only",
                             outputs=outputs)  # fmt: skip
