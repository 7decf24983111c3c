"""Training a head of several outputs: the masked, span-weighed loss, the label columns and a short run's report."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from edge.cli_support import run_cli
from edge.errors import InputError, UsageError
from edge.scale import PUBLISHED, NamedScale
from export.dataset import LabelledVideo, WindowSet, default_spec, read_labels
from export.train import TrainConfig, output_loss, start_model, train
from export.zoo import get_architecture

PHQ9 = NamedScale("phq9", PUBLISHED["PHQ-9"])
TINY = {"stem": 4, "widths": [8], "blocks": [1], "shift_div": 4}
TWO = {**TINY, "outputs": ["bdi_ii:BDI-II", "phq9:PHQ-9"]}
SIZE = 32


def two_label_set(count: int, seed: int, unlabelled: tuple[int, ...] = ()) -> WindowSet:
    """One window per video whose brightness follows the BDI-II label; PHQ-9 labels on 0-27, none for the videos
    ``unlabelled`` names."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.0, 63.0, count).astype(np.float32)
    base = (40 + scores * 3)[:, None, None, None, None]
    windows = np.clip(base + rng.normal(0, 10, (count, 16, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    videos = tuple(
        LabelledVideo(
            Path(f"v{i}.mp4"), float(s), {"sex": "fm"[i % 2]}, {"phq9": None if i in unlabelled else s * 27 / 63}
        )
        for i, s in enumerate(scores.tolist())
    )
    return WindowSet(windows, scores, np.arange(count, dtype=np.int64), videos, rejected=0)


def test_a_masked_label_contributes_nothing_to_the_loss_or_its_gradient() -> None:
    prediction = torch.tensor([[10.0, 5.0], [20.0, 9.0], [30.0, 1.0]], requires_grad=True)
    target = torch.tensor([[12.0, 4.0], [20.0, float("nan")], [33.0, 2.0]])
    loss = output_loss(prediction, target, (63.0, 27.0))
    loss.backward()
    assert prediction.grad is not None and torch.isfinite(prediction.grad).all()
    assert prediction.grad[1, 1] == 0.0  # no label: no pull on that prediction
    # the same as leaving the unlabelled row out of the PHQ-9 term, whatever the prediction there
    fixed = prediction.detach()
    bdi = ((fixed[:, 0] - target[:, 0]) / 63.0).pow(2).mean()
    phq = ((fixed[[0, 2], 1] - target[[0, 2], 1]) / 27.0).pow(2).mean()
    assert loss.item() == pytest.approx(float((bdi + phq) / 2))
    moved = prediction.detach().clone()
    moved[1, 1] = 27.0
    assert float(output_loss(moved, target, (63.0, 27.0))) == pytest.approx(loss.item())


def test_spans_weigh_outputs_equally_and_an_output_without_labels_is_left_out_of_the_average() -> None:
    target = torch.zeros(1, 2)
    # a tenth of each scale's span off: the same loss whichever output is wrong
    bdi_off = output_loss(torch.tensor([[6.3, 0.0]]), target, (63.0, 27.0))
    phq_off = output_loss(torch.tensor([[0.0, 2.7]]), target, (63.0, 27.0))
    assert float(bdi_off) == pytest.approx(float(phq_off)) == pytest.approx(0.01 / 2)
    # a batch without any PHQ-9 label is the BDI-II term alone, not halved by an empty second term
    alone = output_loss(torch.tensor([[6.3, 0.0]]), torch.tensor([[0.0, float("nan")]]), (63.0, 27.0))
    assert float(alone) == pytest.approx(0.01)
    # one output, (N,): the span-scaled MSE training always used
    prediction, truth = torch.tensor([3.0, 40.0]), torch.tensor([0.0, 50.0])
    expected = torch.nn.functional.mse_loss(prediction / 63.0, truth / 63.0)
    assert float(output_loss(prediction, truth, (63.0,))) == pytest.approx(float(expected))


def _labels_csv(
    tmp_path: Path, rows: list[list[str]], header: tuple[str, ...] = ("video", "score", "phq9", "sex")
) -> Path:
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (tmp_path / name).write_bytes(b"x")
    path = tmp_path / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_label_columns_of_further_outputs_are_read_range_checked_and_an_empty_cell_is_a_missing_label(
    tmp_path: Path,
) -> None:
    path = _labels_csv(tmp_path, [["a.mp4", "10", "4", "f"], ["b.mp4", "40", "", "f"], ["c.mp4", "0", "27", "m"]])
    videos = read_labels(path, None, PUBLISHED["BDI-II"], [PHQ9], require_outputs=True)
    assert [v.further for v in videos] == [{"phq9": 4.0}, {"phq9": None}, {"phq9": 27.0}]
    assert videos[0].groups == {"sex": "f"}  # the label column is never a grouping column
    path = _labels_csv(tmp_path, [["a.mp4", "10", "4", "f"], ["b.mp4", "40", "28", "f"]])
    with pytest.raises(InputError, match=r"labels.csv:3: phq9 28.0 is outside PHQ-9 0-27 \(fix: .*--output phq9:"):
        read_labels(path, None, PUBLISHED["BDI-II"], [PHQ9], require_outputs=True)
    path = _labels_csv(tmp_path, [["a.mp4", "", "4", "f"]])
    with pytest.raises(InputError, match="score '' is not a number"):  # the primary label stays required
        read_labels(path, None, PUBLISHED["BDI-II"], [PHQ9], require_outputs=True)


def test_a_missing_label_column_is_refused_naming_it_before_any_video_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the videos do not exist: the column is refused before the rows are even checked
    path = tmp_path / "labels.csv"
    path.write_text("video,score,sex\nnowhere.mp4,10,f\n")
    argv = ["train", "--labels", str(path), "--out", str(tmp_path / "run"), "--size", str(SIZE),
            "--output", "bdi_ii:bdi-ii", "--output", "phq9:phq-9"]  # fmt: skip
    assert run_cli("python -m export", "", "export.commands", argv) == 2
    err = capsys.readouterr().err
    assert "has no column 'phq9' for the labels of output(s) phq9" in err and "add a column named after" in err
    assert not (tmp_path / "run").exists()
    both = [*argv, "--scale", "phq-9"]
    assert run_cli("python -m export", "", "export.commands", both) == 2
    assert "name every output with --output alone" in capsys.readouterr().err


def test_a_short_two_output_run_reports_each_output_on_its_labelled_windows(tmp_path: Path) -> None:
    spec, _ = default_spec("NTCHW", frames=16, size=SIZE)
    data, val = two_label_set(8, 0, unlabelled=(1, 2)), two_label_set(6, 1, unlabelled=(4,))
    config = TrainConfig(out=tmp_path / "run", options=TWO, size=SIZE, epochs=2, batch_size=4, seed=3)
    train(config, data, val, spec)
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["validation"]["windows"] == 6 and "outputs" not in saved["validation"]  # top level: the primary
    phq = saved["outputs"]["phq9"]
    assert phq["units"] == "PHQ-9" and phq["windows"] == 5 and phq["range"] == [0.0, 27.0]
    labelled = [v.further["phq9"] for v in data.videos if v.further["phq9"] is not None]
    assert phq["train_mean"] == pytest.approx(np.mean(labelled), rel=1e-6)
    assert 0.0 <= phq["mae"] <= phq["rmse"] <= 27.0 and sum(g["windows"] for g in phq["by_group"]["sex"].values()) == 5
    assert phq["mae"] != pytest.approx(saved["validation"]["mae"])  # its own predictions and labels, not the primary's
    best = saved["history"][saved["best_epoch"] - 1]
    assert best["outputs"]["phq9"]["val_mae"] == pytest.approx(phq["mae"])
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(row["outputs"]["phq9"]["val_mae"], float) for row in log)
    checkpoint = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert checkpoint["options"]["outputs"] == TWO["outputs"]
    model = get_architecture("expresso-tsm").build(16, SIZE, checkpoint["options"])
    model.load_state_dict(checkpoint["state_dict"])
    assert model(torch.zeros(3, 16, 3, SIZE, SIZE)).shape == (3, 2)


def test_a_further_output_worse_than_its_baseline_is_warned_about_like_the_primary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec, _ = default_spec("NTCHW", frames=16, size=SIZE)
    data, val = two_label_set(8, 0), two_label_set(6, 1)
    mean = float(np.mean([v.further["phq9"] for v in data.videos]))
    val = replace(val, videos=tuple(replace(v, further={"phq9": mean}) for v in val.videos))  # the baseline is exact
    config = TrainConfig(out=tmp_path / "run", options=TWO, size=SIZE, epochs=1, batch_size=4, seed=3)
    with caplog.at_level(logging.WARNING, logger="export.train"):
        report = train(config, data, val, spec)
    assert report["outputs"]["phq9"]["baseline_mae"] == pytest.approx(0.0, abs=1e-4)
    assert report["outputs"]["phq9"]["beats_baseline"] is False
    assert "output phq9: the best model" in caplog.text and "does NOT beat" in caplog.text


def test_an_output_no_training_video_is_labelled_for_is_refused(tmp_path: Path) -> None:
    spec, _ = default_spec("NTCHW", frames=16, size=SIZE)
    config = TrainConfig(out=tmp_path / "run", options=TWO, size=SIZE, epochs=1, batch_size=4)
    with pytest.raises(UsageError, match=r"no training window's video has a label for output\(s\) phq9"):
        train(config, two_label_set(3, 0, unlabelled=(0, 1, 2)), two_label_set(2, 1), spec)


def test_a_validation_set_without_labels_for_an_output_says_so_instead_of_a_number(tmp_path: Path) -> None:
    spec, _ = default_spec("NTCHW", frames=16, size=SIZE)
    config = TrainConfig(out=tmp_path / "run", options=TWO, size=SIZE, epochs=1, batch_size=4)
    report = train(config, two_label_set(4, 0), two_label_set(2, 1, unlabelled=(0, 1)), spec)
    phq = report["outputs"]["phq9"]
    assert phq["windows"] == 0 and phq["mae"] is None and "no validation window" in phq["reason"]
    assert report["history"][0]["outputs"]["phq9"]["val_mae"] is None and report["validation"]["windows"] == 2


def test_a_one_output_checkpoint_starts_a_two_output_model_with_its_head_reinitialised(tmp_path: Path) -> None:
    torch.manual_seed(5)
    source = get_architecture("expresso-tsm").build(16, SIZE, TINY)
    torch.save(source.state_dict(), tmp_path / "one.pt")
    model, info = start_model(TrainConfig(out=tmp_path / "run", options=TWO, size=SIZE, init=tmp_path / "one.pt"))
    assert info is not None and set(info.reinitialised) == {"fc.weight", "fc.bias"}
    own, theirs = model.state_dict(), source.state_dict()
    assert own["fc.weight"].shape[0] == 2
    assert all(torch.equal(own[key], theirs[key]) for key in theirs if not key.startswith("fc."))


@pytest.mark.slow
def test_two_outputs_from_sample_data_through_training_export_and_evaluation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    videos = tmp_path / "videos"
    argv = ["sample-data", "--out", str(videos), "--split", "heldout", "--count", "2", "--seconds", "4",
            "--also-output", "phq9:phq-9"]  # fmt: skip
    assert run_cli("python -m export", "", "export.commands", argv) == 0
    capsys.readouterr()
    labels = videos / "labels.csv"
    with labels.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(0.0 <= float(row["phq9"]) <= 27.0 for row in rows) and {"score", "phq9"} <= set(rows[0])
    rows[1]["phq9"] = ""  # the second participant did only the BDI-II
    with labels.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    argv = ["train", "--labels", str(labels), "--val-labels", str(labels), "--out", str(tmp_path / "run"),
            "--output", "bdi_ii:bdi-ii", "--output", "phq9:phq-9", "--epochs", "1", "--size", str(SIZE),
            "--batch-size", "2", "--group-columns", "lighting"]  # fmt: skip
    for key, value in TINY.items():
        argv += ["--option", f"{key}={json.dumps(value)}"]
    assert run_cli("python -m export", "", "export.commands", argv) == 0
    printed = capsys.readouterr().out
    assert "output phq9 (PHQ-9): val MAE" in printed and "  phq9 val MAE" in printed.splitlines()[0]
    trained = json.loads((tmp_path / "run" / "report.json").read_text())
    assert 0 < trained["outputs"]["phq9"]["windows"] < trained["validation"]["windows"]

    clips = [str(p) for p in sorted(videos.glob("*.mp4"))]
    argv = ["onnx", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--out", str(tmp_path / "bundle"),
            "--check-videos", *clips, "--allow-degenerate"]  # fmt: skip
    assert run_cli("python -m export", "", "export.commands", argv) == 0  # no --option: the checkpoint names both
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert [(o["name"], o["units"]) for o in manifest["outputs"]] == [("bdi_ii", "BDI-II"), ("phq9", "PHQ-9")]
    capsys.readouterr()

    argv = ["evaluate", str(tmp_path / "bundle"), "--labels", str(labels), "--json"]
    assert run_cli("python -m export", "", "export.commands", argv) == 0
    report = json.loads(capsys.readouterr().out)
    (phq,) = report["outputs"]
    assert report["units"] == "BDI-II" and report["videos"]["scored"] == 2
    assert phq["evaluated"] and phq["units"] == "PHQ-9" and phq["videos"] == {"labelled": 1, "scored": 1}
    # the baseline is phq9's training mean, which the checkpoint's metrics carried into the model card
    assert phq["baseline"]["source"].endswith("(model_card.metrics.outputs.phq9.train_mean)")
    assert phq["baseline"]["value"] == pytest.approx(float(rows[0]["phq9"]))
