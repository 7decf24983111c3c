"""Open intake: an ONNX model of an architecture outside the zoo becomes a bundle that calibrates and scores."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from calibration.collect import Collected, write_set
from edge.bundle import load_bundle
from edge.cli_support import run_cli
from edge.preprocess import batch_windows
from export.dataset import default_spec
from export.degenerate import SAMPLES, video_windows

FRAMES, SIZE = 16, 32
pytestmark = pytest.mark.filterwarnings("ignore")  # torch's exporter warns about the legacy path and the GRU


class Foreign(nn.Module):
    """Not a zoo network: a 3D convolution, a GRU over time and a linear head, on (N, C, T, H, W); with ``ranges``
    one head per range, an (N, K) output (a BDI-II and a PHQ-9 head, say)."""

    def __init__(self, ranges: tuple[float, ...] = ()) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv3d(3, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool3d((FRAMES, 1, 1))
        self.gru = nn.GRU(6, 8, batch_first=True)
        self.head = nn.Linear(8, max(len(ranges), 1))
        self.register_buffer("tops", torch.tensor(ranges or (63.0,)))
        with torch.no_grad():
            self.head.weight.mul_(40.0)
            self.head.weight[1:] = self.head.weight[0]  # further heads: the first one's weights on their own range
            self.head.bias[1:] = self.head.bias[0]

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv(clip))).flatten(2).transpose(1, 2)  # (N, T, 6)
        out, _ = self.gru(x)
        return torch.sigmoid(self.head(out[:, -1])) * self.tops


def centred_on_samples(model: Foreign) -> Foreign:
    """Shift the random head's bias so its logits centre on the sample videos' windows: a random network's scores
    then spread over the range instead of pinning at an end (which import-onnx rightly refuses)."""
    spec, tiles = default_spec("NCTHW", frames=FRAMES, size=SIZE)
    windows = torch.from_numpy(batch_windows(list(video_windows(spec, tiles, sorted(SAMPLES.glob("*.mp4")))), spec))
    with torch.no_grad():
        features, _ = model.gru(model.pool(torch.relu(model.conv(windows))).flatten(2).transpose(1, 2))
        model.head.bias -= model.head(features[:, -1]).mean(dim=0)
    return model


def export_foreign(path: Path, *, dynamic: bool = True, ranges: tuple[float, ...] = ()) -> Path:
    example = torch.zeros(2, 3, FRAMES, SIZE, SIZE)
    axes = {"video": {0: "n"}, "severity": {0: "n"}} if dynamic else None
    model = centred_on_samples(Foreign(ranges)).eval()
    torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["video"],
                      output_names=["severity"], dynamic_axes=axes, opset_version=17)  # fmt: skip
    return path


def export_cli(*argv: str) -> int:
    return run_cli("python -m export", "", "export.commands", list(argv))


@pytest.mark.slow
def test_a_foreign_onnx_model_becomes_a_bundle_that_the_daemon_runs_and_that_calibrates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = export_foreign(tmp_path / "foreign.onnx")
    out = tmp_path / "bundle"
    assert export_cli("import-onnx", str(model), "--out", str(out), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    bundle = load_bundle(out)  # hashes and schema checked
    section = bundle.manifest["input"]
    assert (section["name"], section["layout"], section["frames"], section["height"]) == ("video", "NCTHW", 16, 32)
    assert bundle.manifest["output"]["name"] == "severity" and report["output_check"]["verdict"] == "ok"
    assert bundle.manifest["model"]["weights"]["checkpoint_format"] == "onnx"
    # the daemon runs it: capture, face pipeline, backend, aggregation, outbox (edge replay, no broker)
    video = SAMPLES / "clip_002_score55.4.mp4"
    assert run_cli("python -m edge", "", "edge.commands", ["replay", str(video), "--fast", "--bundle", str(out),
                                                            "--json"]) == 0  # fmt: skip
    replay = json.loads(capsys.readouterr().out)
    assert replay["windows_scored"] >= 4 and replay["summaries_queued"] >= 1
    # and it calibrates like a zoo bundle
    collected = Collected()
    for name in ("a", "b"):
        index = collected.add_source(name)
        for frames in video_windows(bundle.input, bundle.tiles, sorted(SAMPLES.glob("*.mp4"))):
            collected.add(frames, index, float("nan"))
    write_set(tmp_path / "set", collected, bundle.input, bundle.tiles)
    assert export_cli("calibrate", str(out), "--calib", str(tmp_path / "set"), "--max-delta", "5") == 0
    assert load_bundle(out).find("onnx", precision="int8") is not None


def test_intake_file_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = export_foreign(tmp_path / "foreign.onnx")
    intake = tmp_path / "intake.toml"
    intake.write_text('layout = "NCTHW"\nsample_fps = 10.0\n[normalization]\nmean = [0.5, 0.5, 0.5]\n')
    assert export_cli("import-onnx", str(model), "--intake", str(intake), "--out", str(tmp_path / "b")) == 0
    manifest = load_bundle(tmp_path / "b").manifest
    assert manifest["input"]["sample_fps"] == 10.0 and manifest["input"]["normalization"]["mean"] == [0.5] * 3
    capsys.readouterr()
    code = export_cli("import-onnx", str(model), "--frames", "32", "--out", str(tmp_path / "c"), "--json")
    error = json.loads(capsys.readouterr().out)["error"]
    assert code == 4 and "frames 16 (wants 32)" in error["message"] and not (tmp_path / "c").exists()
    fixed = export_foreign(tmp_path / "fixed.onnx", dynamic=False)
    assert export_cli("import-onnx", str(fixed), "--out", str(tmp_path / "d")) == 4
    assert "fixed batch of 2" in capsys.readouterr().err
    intake.write_text("colour = 'BGR'\n")
    assert export_cli("import-onnx", str(model), "--intake", str(intake), "--out", str(tmp_path / "e")) == 3
    assert "unknown key(s) colour" in capsys.readouterr().err
    intake.write_text('frames = "16"\n')
    assert export_cli("import-onnx", str(model), "--intake", str(intake), "--out", str(tmp_path / "e")) == 3
    assert "wrong type for frames = '16'" in capsys.readouterr().err
    broken = tmp_path / "broken.onnx"
    proto = onnx.load(str(model))
    proto.graph.node[0].input[0] = "nowhere"
    onnx.save(proto, str(broken))
    assert export_cli("import-onnx", str(broken), "--out", str(tmp_path / "f")) == 4
    assert "is not a valid ONNX model" in capsys.readouterr().err


@pytest.mark.slow
def test_a_foreign_model_of_two_outputs_becomes_a_bundle_that_calibrates_and_evaluates_per_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from edge.backends import create
    from edge.preprocess import batch_windows

    model = export_foreign(tmp_path / "two.onnx", ranges=(63.0, 27.0))
    named = ["--output", "bdi_ii:bdi-ii", "--output", "phq9:phq-9"]
    assert export_cli("import-onnx", str(model), *named, "--out", str(tmp_path / "b"), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    bundle = load_bundle(tmp_path / "b")
    assert [(o.name, o.scale.name) for o in bundle.outputs] == [("bdi_ii", "BDI-II"), ("phq9", "PHQ-9")]
    assert report["output"] == "bdi_ii, phq9" and report["output_check"]["others"] == {"phq9": "ok"}
    windows = video_windows(bundle.input, bundle.tiles, sorted(SAMPLES.glob("*.mp4")))
    with create("onnxruntime", bundle) as backend:
        scores = backend.infer_outputs(batch_windows(list(windows[:6]), bundle.input))
    assert scores.shape == (6, 2) and (scores[:, 1] <= 27).all() and np.ptp(scores[:, 1]) > 0
    collected = Collected()  # calibration gates each output in its own units (1% of its range by default)
    index = collected.add_source("a")
    for frames in windows:
        collected.add(frames, index, float("nan"))
    write_set(tmp_path / "set", collected, bundle.input, bundle.tiles)
    assert export_cli("calibrate", str(tmp_path / "b"), "--calib", str(tmp_path / "set"), "--max-delta", "6.3") == 0
    gates = load_bundle(tmp_path / "b").manifest["calibration"]["outputs"]
    assert [(g["name"], g["units"], g["max_delta"]) for g in gates] == [
        ("bdi_ii", "BDI-II", 6.3),
        ("phq9", "PHQ-9", pytest.approx(2.7)),
    ]
    capsys.readouterr()
    labels = tmp_path / "labels.csv"  # evaluate reports per output: the primary's labels in 'score', phq9's in 'phq9'
    clips = sorted(SAMPLES.glob("*.mp4"))[:2]
    labels.write_text("video,score,phq9\n" + "".join(f"{clip},30,12\n" for clip in clips), encoding="utf-8")
    assert export_cli("evaluate", str(tmp_path / "b"), "--labels", str(labels), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    (phq,) = report["outputs"]
    assert (report["output"], report["units"], phq["output"], phq["units"], phq["evaluated"]) == (
        "bdi_ii",
        "BDI-II",
        "phq9",
        "PHQ-9",
        True,
    )
    assert phq["model_metrics"]["n"] == 2 and phq["baseline"]["value"] == 12.0 and "groups" in phq
    labels.write_text("video,score\n" + "".join(f"{clip},30\n" for clip in clips), encoding="utf-8")
    assert export_cli("evaluate", str(tmp_path / "b"), "--labels", str(labels)) == 0
    assert "output phq9: not evaluated: the labels CSV has no column 'phq9'" in capsys.readouterr().out
    three = [*named, "--output", "phq8:phq-8"]  # more names than the model has columns
    assert export_cli("import-onnx", str(model), *three, "--out", str(tmp_path / "c")) == 4
    assert "a bundle of 3 output(s) needs one tensor of 3 finite scores per window" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):  # argparse's usage error
        export_cli("import-onnx", str(model), "--output", "phq9", "--out", str(tmp_path / "d"))
    assert "expected NAME:SCALE" in capsys.readouterr().err
