"""Gradient attribution on models whose answer is known, the MODEL/--checkpoint rules, and the command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_factory import two_region_bundle
from torch import nn

from edge.backends import create
from edge.bundle import load_bundle
from edge.cli_support import run_cli
from edge.errors import BundleError, UsageError
from edge.scale import BDI_II
from export.dataset import default_spec
from export.explain.methods import GRADIENT_METHODS, Gradient
from export.explain.model import open_method
from export.train import CHECKPOINT_FORMAT
from export.zoo import get_architecture

ROOT = Path(__file__).resolve().parents[2]
SPEC, TILES = default_spec("NTCHW", frames=4, size=32)
REGIONS = tuple(t.region for t in TILES)
TINY = {"stem": 8, "widths": [16], "blocks": [1]}  # a random expresso-tsm small enough to attribute in a blink


class MouthOnly(nn.Module):
    """score = sum of relu(w x) over the mouth tile: every other pixel has no influence."""

    def __init__(self) -> None:
        super().__init__()
        mouth = next(t for t in TILES if t.region == "mouth")
        self.rows, self.cols = slice(mouth.y, mouth.y + mouth.height), slice(mouth.x, mouth.x + mouth.width)
        self.weight = nn.Parameter(torch.rand(1, 4, 3, mouth.height, mouth.width) + 0.5)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x[:, :, :, self.rows, self.cols] * self.weight).sum(dim=(1, 2, 3, 4))


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_every_gradient_method_puts_a_mouth_only_model_on_the_mouth(name: str) -> None:
    method = Gradient(SPEC, TILES, MouthOnly(), name)
    window = np.abs(np.random.default_rng(0).normal(size=(1, 4, 3, 32, 32))).astype(np.float32) + 0.1
    score, per_frame = method.attribute(window)
    assert score > 0 and per_frame.shape == (4, len(TILES)) and (per_frame >= 0).all()
    shares = per_frame.sum(axis=0) / per_frame.sum()
    assert shares[REGIONS.index("mouth")] > 0.99, dict(zip(REGIONS, shares.round(3), strict=True))


def tiny_checkpoint(path: Path) -> Path:
    """A checkpoint in ``python -m export train``'s format for the tiny expresso-tsm (random weights)."""
    arch = get_architecture("expresso-tsm")
    model = arch.build(4, 32, TINY)
    hints = {"architecture": arch.name, "options": arch.options(TINY), "frames": 4, "size": 32}
    torch.save({"format": CHECKPOINT_FORMAT, **hints, "state_dict": model.state_dict()}, path)
    return path


def test_a_checkpoint_alone_gets_deeplift_and_occlusion_on_the_same_model(tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(tmp_path / "best.pt")
    window = np.random.default_rng(1).normal(size=(1, 4, 3, 32, 32)).astype(np.float32)
    deeplift = open_method(checkpoint, checkpoint=None, method=None)
    occlusion = open_method(checkpoint, checkpoint=None, method="occlusion")
    assert (deeplift.name, occlusion.name) == ("deeplift", "occlusion")
    (s1, a1), (s2, a2) = deeplift.attribute(window), occlusion.attribute(window)
    assert s1 == pytest.approx(s2, abs=1e-4) and a1.shape == a2.shape == (4, len(TILES))
    assert a1.sum() > 0 and a2.sum() > 0


def test_a_bundle_needs_its_own_checkpoint_for_gradients(exported_bundle_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="needs the PyTorch weights"):
        open_method(exported_bundle_dir, checkpoint=None, method="deeplift")
    with pytest.raises(BundleError, match="is not the one bundle") as error:
        open_method(exported_bundle_dir, checkpoint=tiny_checkpoint(tmp_path / "other.pt"), method=None)
    assert error.value.exit_code == 4
    assert open_method(exported_bundle_dir, checkpoint=None, method=None).name == "occlusion"


def test_explain_writes_json_pictures_and_a_report_and_prints_region_shares(
    exported_bundle_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = ROOT / "samples" / "clip_001_score28.6.mp4"
    out = tmp_path / "out"
    argv = ["explain", str(exported_bundle_dir), str(video), "--out", str(out), "--json"]
    assert run_cli("python -m export", "", "export.commands", argv) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert "1/1" in captured.err and "windows=" in captured.err  # the progress bar counts videos and windows
    (section,) = printed["videos"]
    assert printed["method"] == "occlusion" and section["windows"] > 3 and "per_window" not in section
    assert printed["scale"] == "BDI-II" and section["band"] in BDI_II.band_names  # the bundle's scale and bands
    assert sum(section["regions"].values()) == pytest.approx(1.0, abs=1e-3)
    assert set(section["correlations"]) >= {"eye_openness", "lip_corner_pull", "gaze_x", "head_motion"}
    saved = json.loads((out / "explanations.json").read_text())
    assert len(saved["videos"][0]["per_window"]) == section["windows"]
    assert len(saved["videos"][0]["per_window"][0]["curve"]) == 4  # one value per frame of the window
    assert {p.name for p in out.glob("*.png")} >= {"clip_001_score28.6.regions.png", "clip_001_score28.6.curve.png"}
    assert "not a diagnostic device" in (out / "report.html").read_text()
    assert (
        run_cli("python -m export", "", "export.commands", [*argv[:3], "--out", str(out), "--method", "saliency"]) == 2
    )
    capsys.readouterr()
    twice = ["explain", str(exported_bundle_dir), str(video), str(video), "--out", str(tmp_path / "twice")]
    assert run_cli("python -m export", "", "export.commands", twice) == 2  # their pictures would overwrite
    assert "more than one video is named clip_001_score28.6.mp4" in capsys.readouterr().err
    assert not (tmp_path / "twice").exists()


def test_the_committed_demo_checkpoint_is_the_one_the_demo_bundle_was_exported_from() -> None:
    bundle, checkpoint = ROOT / "edge" / "assets" / "demo_bundle", ROOT / "export" / "assets" / "demo_checkpoint.pt"
    deeplift = open_method(bundle, checkpoint=checkpoint, method=None)  # refuses a checkpoint of another hash
    assert deeplift.name == "deeplift"
    window = np.random.default_rng(2).normal(0, 1, (2, *deeplift.spec.shape[1:])).astype(np.float32)
    fp32 = create("onnxruntime", load_bundle(bundle), precision="fp32").infer(window)
    scores = [deeplift.attribute(window[i : i + 1])[0] for i in range(2)]
    assert scores == pytest.approx(fp32.tolist(), abs=1e-3)  # PyTorch with the checkpoint = the bundle's FP32 ONNX


def test_each_output_of_a_bundle_is_explained_on_its_own_region(tmp_path: Path) -> None:
    from export.explain.model import model_outputs, open_method, output_index

    bundle = two_region_bundle(tmp_path / "bundle").root
    window = (1.0 + np.random.default_rng(0).normal(0, 0.1, (1, 4, 3, 32, 32))).astype(np.float32)
    outputs = model_outputs(bundle)
    assert [o.name for o in outputs] == ["mouthy", "eyey"] and outputs[1].scale.name == "PHQ-9"
    for name, region in (("mouthy", "mouth"), (None, "mouth"), ("eyey", "right_eye")):
        method = open_method(bundle, checkpoint=None, method=None, output=output_index(outputs, name, bundle))
        _, per_frame = method.attribute(window)
        totals = per_frame.sum(axis=0)
        assert REGIONS[int(np.argmax(totals))] == region and np.count_nonzero(totals) == 1, name
    with pytest.raises(UsageError, match="has no output 'phq9'") as refused:
        output_index(outputs, "phq9", bundle)
    assert "mouthy, eyey" in refused.value.fix


def test_explain_output_names_it_takes_its_labels_and_its_scale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = two_region_bundle(tmp_path / "bundle").root
    video = ROOT / "samples" / "clip_001_score28.6.mp4"
    labels = tmp_path / "labels.csv"
    labels.write_text(f"video,score\n{video},28.6\n")
    argv = ["explain", str(bundle), str(video), "--out", str(tmp_path / "out"), "--output", "eyey", "--json"]
    assert run_cli("python -m export", "", "export.commands", [*argv, "--labels", str(labels)]) == 2
    assert "has no column 'eyey'" in capsys.readouterr().err  # a further output's labels are its own column
    labels.write_text(f"video,score,eyey\n{video},28.6,30\n")
    assert run_cli("python -m export", "", "export.commands", [*argv, "--labels", str(labels)]) == 6  # bad input
    assert "eyey 30.0 is outside PHQ-9 0-27" in capsys.readouterr().err
    labels.write_text(f"video,score,eyey\n{video},28.6,14\n")
    assert run_cli("python -m export", "", "export.commands", [*argv, "--labels", str(labels)]) == 0
    printed = json.loads(capsys.readouterr().out)
    (section,) = printed["videos"]
    assert printed["output"] == "eyey" and printed["scale"] == "PHQ-9" and section["band"] == "moderate"
    assert max(section["regions"], key=section["regions"].get) == "right_eye"
    assert "output eyey (PHQ-9)" in (tmp_path / "out" / "report.html").read_text()
