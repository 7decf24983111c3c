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
