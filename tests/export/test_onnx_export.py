"""ONNX export steps: the file, its check against PyTorch, MACs, the bundle it lands in."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torchvision_spec import TORCHVISION_ARCHS

from edge.bundle import InputSpec, load_bundle
from edge.errors import AccuracyGateError, UsageError
from edge.layout import default_input_section
from export.bundle_build import MODEL_FILE, RANDOM_WEIGHTS_WARNING, export_bundle
from export.checkpoint import CheckpointError
from export.macs import macs_of_onnx
from export.onnx_export import OnnxExportError, onnx_from_model, verify_onnx
from export.zoo import get_architecture

OPTIONS = {"stem": 8, "widths": [16, 16], "blocks": [1, 1]}


def _spec(layout: str = "NTCHW", frames: int = 4, size: int = 32) -> InputSpec:
    return InputSpec.from_manifest(default_input_section(layout=layout, frames=frames, size=size))


def test_onnx_file_has_a_dynamic_batch_and_matches_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = get_architecture("expresso-tsm").build(4, 32, OPTIONS)
    path = onnx_from_model(model, _spec(), tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 17
    assert proto.graph.input[0].name == "clip"
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    clips = np.random.default_rng(1).normal(size=(3, 4, 3, 32, 32)).astype(np.float32)
    (scores,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"clip": clips})
    assert scores.shape == (3,)
    np.testing.assert_allclose(scores, model(torch.from_numpy(clips)).detach().numpy(), atol=1e-4)
    result = verify_onnx(path, model, _spec(), windows=4, seed=2)
    assert result.passed and result.ratio <= 1e-4 and result.output_std > 0
    assert "ONNX Runtime vs PyTorch on 4 random windows" in result.describe()


def test_verification_catches_a_model_that_differs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    exported = get_architecture("expresso-tsm").build(4, 32, OPTIONS)
    path = onnx_from_model(exported, _spec(), tmp_path / "m.onnx")
    other = get_architecture("expresso-tsm").build(4, 32, OPTIONS)
    with pytest.raises(AccuracyGateError, match="FAILED"):
        verify_onnx(path, other, _spec(), windows=4, seed=3)


class _NearlyConstant(torch.nn.Module):
    """Outputs about 30 whatever the window: the spread of a random-weight model at its worst."""

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """A score per window, hardly depending on it."""
        return 30.0 + 1e-6 * clip.mean(dim=(1, 2, 3, 4))


def test_verification_divides_near_constant_outputs_by_the_floor(tmp_path: Path) -> None:
    path = onnx_from_model(_NearlyConstant(), _spec(), tmp_path / "m.onnx")
    result = verify_onnx(path, _NearlyConstant(), _spec(), windows=4, seed=5, output_span=63.0)
    assert result.output_std < 1e-5 and result.std_floor == pytest.approx(0.063)
    assert result.denominator == result.std_floor and result.ratio == result.max_abs_diff / result.std_floor
    assert result.passed  # divided by the std itself, float rounding of 30.0 alone would fail the gate
    assert f"/ max(output std {result.output_std:.3g}, 0.063) = ratio" in result.describe()


@pytest.mark.filterwarnings("ignore:Exporting to ONNX opset version 30")
def test_a_failing_torch_export_becomes_one_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(OnnxExportError, match=r"at opset 30: RuntimeError: .*30") as caught:
        onnx_from_model(_NearlyConstant(), _spec(), tmp_path / "m.onnx", opset=30)
    assert caught.value.exit_code == 4 and "\n" not in str(caught.value)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_macs_count_convolutions_and_matrix_products(tmp_path: Path) -> None:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(4, 8, 1, stride=2, groups=2), torch.nn.Flatten()
    )
    model.append(torch.nn.Linear(8 * 4 * 4, 2))
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}}
    )
    expected = 4 * 8 * 8 * 27 + 8 * 4 * 4 * 2 + 128 * 2
    assert macs_of_onnx(path) == expected


def test_bundle_records_model_weights_input_output_and_card(exported_bundle_dir: Path) -> None:
    bundle = load_bundle(exported_bundle_dir)
    manifest = bundle.manifest
    model = manifest["model"]
    assert model["architecture"] == "expresso-tsm"
    assert model["architecture_options"] == {**get_architecture("expresso-tsm").defaults, **OPTIONS}
    assert model["weights"] == {
        "source": "random",
        "checkpoint_sha256": None,
        "checkpoint_format": None,
        "note": RANDOM_WEIGHTS_WARNING,
        "random_layers": ["*"],
    }
    assert model["macs_per_window"] == macs_of_onnx(exported_bundle_dir / MODEL_FILE) > 0
    assert (bundle.input.layout, bundle.input.shape) == ("NTCHW", (1, 4, 3, 32, 32))
    assert manifest["output"] == {"name": "score", "units": "BDI-II", "range": [0, 63]}
    (artifact,) = bundle.artifacts
    assert (artifact.path, artifact.kind, artifact.precision, artifact.target) == (MODEL_FILE, "onnx", "fp32", "any")
    assert artifact.record["opset"] == 17
    card = manifest["model_card"]
    assert card["not_a_diagnostic_device"] is True
    text = " ".join(card["limitations"]).lower()
    for topic in ("random weights", "lighting", "head pose", "camera angle", "consent", "privacy", "fairness"):
        assert topic in text
    assert sorted(p.name for p in exported_bundle_dir.iterdir()) == ["manifest.json", MODEL_FILE]


def test_checkpoint_hints_rebuild_the_trained_model(tmp_path: Path) -> None:
    torch.manual_seed(4)
    model = get_architecture("expresso-tsm").build(4, 32, OPTIONS)
    path = tmp_path / "trained.pt"
    hints = {"architecture": "expresso-tsm", "options": OPTIONS, "frames": 4, "size": 32}
    torch.save({**hints, "metrics": {"val_mae": 6.5}, "state_dict": model.state_dict()}, path)
    result = export_bundle(None, tmp_path / "bundle", checkpoint=path, verify_windows=2)
    manifest = result.bundle.manifest
    assert manifest["model"]["weights"]["source"] == "checkpoint"
    assert manifest["model"]["weights"]["checkpoint_sha256"] == result.checkpoint.sha256  # type: ignore[union-attr]
    assert manifest["model"]["name"] == "expresso-tsm-trained"
    assert manifest["input"]["frames"] == 4 and manifest["model_card"]["metrics"] == {"val_mae": 6.5}
    assert RANDOM_WEIGHTS_WARNING not in json.dumps(manifest)
    with pytest.raises(CheckpointError, match="pass --arch expresso-tsm"):
        export_bundle("r3d_18", tmp_path / "other", checkpoint=path)


def test_failed_exports_leave_nothing_behind(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        export_bundle("expresso-tsm", tmp_path / "taken", frames=4, size=32, options=OPTIONS, force=True)
    wrong = tmp_path / "wrong.pt"
    torch.save({"stem.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(CheckpointError):
        export_bundle("expresso-tsm", tmp_path / "new", checkpoint=wrong, frames=4, size=32, options=OPTIONS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken", "wrong.pt"]


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCHVISION_ARCHS)
def test_torchvision_architectures_export_and_match(tmp_path: Path, name: str) -> None:
    result = export_bundle(name, tmp_path / name, frames=4, size=32, verify_windows=2)
    assert result.verification.passed
    assert result.bundle.input.layout == "NCTHW" and result.bundle.input.shape == (1, 3, 4, 32, 32)
    (scores,) = ort.InferenceSession(str(tmp_path / name / MODEL_FILE), providers=["CPUExecutionProvider"]).run(
        None, {"clip": np.zeros((2, 3, 4, 32, 32), np.float32)}
    )
    assert scores.shape == (2,)
