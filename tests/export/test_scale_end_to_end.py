"""A PHQ-9 model from sample data to the device's summaries: labels, training, export and the daemon all follow the
scale the labels are on (DESIGN.md, "Scale is one concept")."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import onnx
import pytest
import torch

from edge.bundle import load_bundle
from edge.cli import main as edge_main
from edge.cli_support import run_cli
from edge.client import check
from edge.scale import BDI_II, PUBLISHED, custom_scale
from edge.schemas import schema_errors
from export.synthetic import clip_specs, write_split
from export.synthetic.catalogue import label_on_scale
from export.zoo import get_architecture

PHQ9 = PUBLISHED["PHQ-9"]
TINY = {"stem": 4, "widths": [8], "blocks": [1], "shift_div": 4}
SIZE = 32


def _export(*argv: str) -> int:
    return run_cli("python -m export", "", "export.commands", list(argv))


@pytest.mark.parametrize(
    ("latent", "expected"),
    [(0.0, 0.0), (13.5, 4.5), (19.5, 9.5), (28.5, 14.5), (63.0, 27.0), (45.75, 20.75)],
)
def test_the_latent_maps_band_edge_to_band_edge_onto_phq_9(latent: float, expected: float) -> None:
    assert label_on_scale(latent, PHQ9) == pytest.approx(expected)


def test_every_latent_keeps_its_severity_band_and_a_custom_scale_is_linear() -> None:
    bdi_band = {"minimal": "none_minimal", "mild": "mild", "moderate": "moderate"}
    for latent in [x / 4 for x in range(0, 253)]:
        bdi, phq = BDI_II.band_names_of([latent])[0], PHQ9.band_names_of([label_on_scale(latent, PHQ9)])[0]
        assert phq == bdi_band[bdi] if bdi in bdi_band else phq in ("moderately_severe", "severe")
    assert label_on_scale(31.5, custom_scale(-1.0, 1.0)) == pytest.approx(0.0)
    assert label_on_scale(12.0, BDI_II) == 12.0


def test_a_phq_9_model_trained_on_sample_data_publishes_phq_9_summaries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    videos = tmp_path / "videos"
    labels = write_split(clip_specs("heldout", 2, seconds=4.0, fps=8.0), videos, progress=False, scale=PHQ9)
    with labels.open(newline="") as handle:
        scores = [float(row["score"]) for row in csv.DictReader(handle)]
    assert all(0.0 <= s <= 27.0 for s in scores)

    argv = ["train", "--labels", str(labels), "--val-labels", str(labels), "--out", str(tmp_path / "run"),
            "--scale", "phq-9", "--epochs", "1", "--size", str(SIZE), "--batch-size", "2"]  # fmt: skip
    for key, value in TINY.items():
        argv += ["--option", f"{key}={json.dumps(value)}"]
    assert _export(*argv) == 0
    checkpoint = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert checkpoint["options"]["scale"] == "PHQ-9"
    model = get_architecture("expresso-tsm").build(16, SIZE, checkpoint["options"])
    assert model.output_range == ((0.0, 27.0),)  # type: ignore[union-attr]  # one head column, on 0-27

    bundle_dir = tmp_path / "bundle"
    clips = [str(p) for p in sorted(videos.glob("*.mp4"))]
    code = _export("onnx", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--out", str(bundle_dir),
                   "--check-videos", *clips, "--allow-degenerate")  # fmt: skip
    assert code == 0
    bundle = load_bundle(bundle_dir)
    assert bundle.manifest["output"]["units"] == "PHQ-9" and bundle.manifest["output"]["range"] == [0.0, 27.0]
    assert bundle.scale is PHQ9
    # named for no scale: a PHQ-9 model's output used to be called "bdi", in the manifest and the summaries
    assert bundle.manifest["output"]["name"] == "score"
    assert [o.name for o in onnx.load(str(bundle_dir / bundle.artifacts[0].path)).graph.output] == ["score"]
    capsys.readouterr()

    argv = ["demo", "--video", clips[0], "--json", "--set", f"model.bundle={bundle_dir}",
            "--set", "privacy.k_min_windows=2", "--set", "model.backend=onnxruntime"]  # fmt: skip
    assert edge_main(argv) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    summaries = [line["payload"] for line in lines if line["topic"].endswith("/summary")]
    assert summaries and all(line["topic"].split("/")[1] == "v2" for line in lines)  # contract v2: scale named
    for summary in summaries:
        assert summary["version"] == 2 and schema_errors(summary, "summary") == []
        v1_topic = f"x/v1/{summary['device']}/summary"  # a v1 topic: the v2 client says what it expects
        assert "is not <prefix>/v2/<device>/" in check(v1_topic, json.dumps(summary).encode()).errors[0]
        score = summary["score"]
        assert score["scale"] == "PHQ-9" and score["range"] == [0.0, 27.0]
        assert list(score["bands"]) == list(PHQ9.band_names) and sum(score["bands"].values()) == pytest.approx(1.0)
        assert 0.0 <= score["mean"] <= 27.0
