"""Training: a short epoch on tiny in-memory windows writes checkpoints and a report with per-group errors."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision_spec import torchvision_state_dict

from edge.bundle import sha256_of
from edge.cli_support import run_cli
from edge.errors import InputError, UsageError
from export import train as export_train
from export.checkpoint import CheckpointError
from export.commands.train import parse_options, split_videos
from export.dataset import LabelledVideo, WindowSet, default_spec, read_labels
from export.synthetic import clip_specs, write_split
from export.train import (
    CHECKPOINT_FORMAT,
    TrainConfig,
    augment,
    error_report,
    seed_everything,
    select_device,
    start_model,
    train,
)
from export.zoo import get_architecture

TINY = {"stem": 4, "widths": [8], "blocks": [1], "shift_div": 4}
SIZE = 32


def tiny_set(count: int, seed: int, groups: tuple[str, ...]) -> WindowSet:
    """Windows whose brightness follows the label, so a tiny model can learn something in one epoch; each video also
    has a PHQ-9 label (``phq9``), which only a model of two outputs reads."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.0, 63.0, count).astype(np.float32)
    base = (40 + scores * 3)[:, None, None, None, None]
    windows = np.clip(base + rng.normal(0, 10, (count, 16, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    videos = tuple(
        LabelledVideo(Path(f"v{i}.mp4"), float(s), {"skin_tone": groups[i % len(groups)]}, {"phq9": s * 27 / 63})
        for i, s in enumerate(scores.tolist())
    )
    return WindowSet(windows, scores, np.arange(count, dtype=np.int64), videos, rejected=0)


def test_one_short_epoch_writes_checkpoints_and_a_grouped_report(tmp_path: Path) -> None:
    spec, _ = default_spec("NTCHW", frames=16, size=SIZE)
    config = TrainConfig(out=tmp_path / "run", options=TINY, size=SIZE, epochs=1, batch_size=4, seed=3)
    report = train(config, tiny_set(8, 0, ("lighter", "darker")), tiny_set(6, 1, ("lighter", "medium")), spec)
    assert (tmp_path / "run" / "epoch_001.pt").is_file() and (tmp_path / "run" / "best.pt").is_file()
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["best_epoch"] == 1 == report["best_epoch"]
    val = saved["validation"]
    assert val["windows"] == 6 and 0.0 <= val["mae"] <= val["rmse"] <= 63.0
    assert set(val["by_group"]["skin_tone"]) == {"lighter", "medium"}
    assert sum(g["windows"] for g in val["by_group"]["skin_tone"].values()) == 6
    assert len(saved["history"]) == 1 and {"train_mae", "val_mae", "val_rmse"} <= set(saved["history"][0])
    checkpoint = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert checkpoint["format"] == CHECKPOINT_FORMAT and checkpoint["size"] == SIZE
    model = get_architecture(checkpoint["architecture"]).build(checkpoint["frames"], SIZE, checkpoint["options"])
    model.load_state_dict(checkpoint["state_dict"])


def test_same_seed_trains_the_same_weights(tmp_path: Path) -> None:
    spec, _ = default_spec("NTCHW", frames=16, size=SIZE)
    data = tiny_set(4, 0, ("a",))
    configs = [TrainConfig(out=tmp_path / run, options=TINY, size=SIZE, epochs=1, batch_size=2, seed=7) for run in "ab"]
    for config in configs:
        train(config, data, data, spec)
    first = torch.load(tmp_path / "a" / "best.pt", weights_only=True)["state_dict"]
    second = torch.load(tmp_path / "b" / "best.pt", weights_only=True)["state_dict"]
    assert first and first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    # the equality is not that of two untouched models: the epoch moved the weights away from the seeded start
    seed_everything(7)
    start = get_architecture(configs[0].architecture).build(configs[0].frames, SIZE, TINY).state_dict()
    assert any(not torch.equal(first[key], start[key]) for key in first if key in start)


def test_error_report_against_the_train_mean_baseline() -> None:
    data = tiny_set(4, 2, ("x", "y"))
    perfect = error_report(data.scores.copy(), data, train_mean=30.0)
    assert perfect["mae"] == 0.0 and perfect["baseline_mae"] == pytest.approx(np.abs(data.scores - 30.0).mean())
    off = error_report(data.scores + 2.0, data, train_mean=30.0)
    assert off["mae"] == pytest.approx(2.0) and off["bias"] == pytest.approx(2.0)
    assert off["group_mae_gap"]["skin_tone"] == pytest.approx(0.0, abs=1e-5)


def test_error_report_refuses_a_column_of_scores() -> None:
    # score_windows returns (N, K); an (N, 1) column broadcast against (N,) labels reported a held-out MAE of 20.1
    # for a demo model whose true window MAE was about 6
    data = tiny_set(2, 4, ("a",))
    with pytest.raises(ValueError, match="one prediction per window"):
        error_report(data.scores[:, None], data, 30.0)


def test_augment_keeps_shape_and_changes_pixels() -> None:
    data = tiny_set(2, 4, ("a",))
    out = augment(data.windows, np.random.default_rng(0))
    assert out.shape == data.windows.shape and out.dtype == np.uint8
    assert not np.array_equal(out, data.windows)


def test_read_labels_paths_groups_and_errors(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "b.mp4").write_bytes(b"x")
    path = tmp_path / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "score", "sex", "seed"])
        writer.writerows([["a.mp4", "10", "f", "1"], ["b.mp4", "50.5", "f", "2"]])
    videos = read_labels(path)
    assert [v.path for v in videos] == [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    assert videos[1].score == 50.5 and videos[0].groups == {"sex": "f"}  # a per-row seed is no group
    with pytest.raises(UsageError, match="camera"):
        read_labels(path, ["camera"])
    path.write_text("video,score\na.mp4,70\n")
    with pytest.raises(InputError, match="outside BDI-II"):
        read_labels(path)


def test_split_holds_out_whole_identities() -> None:
    videos = [LabelledVideo(Path(f"{i}.mp4"), 1.0, {"identity": f"id{i % 5}"}) for i in range(20)]
    train_videos, val_videos = split_videos(videos, 0.2, seed=0)
    assert len(val_videos) == 4 and len(train_videos) == 16
    assert not {v.groups["identity"] for v in train_videos} & {v.groups["identity"] for v in val_videos}


def test_parse_options() -> None:
    assert parse_options(["stem=16", "widths=[24,48]", "name=x"]) == {"stem": 16, "widths": [24, 48], "name": "x"}
    with pytest.raises(UsageError):
        parse_options(["stem"])


def test_train_command_on_a_rendered_video_through_the_face_pipeline(tmp_path: Path) -> None:
    labels = write_split(clip_specs("heldout", 1, seconds=3.0, fps=8.0), tmp_path / "videos", progress=False)
    argv = ["train", "--labels", str(labels), "--val-labels", str(labels), "--out", str(tmp_path / "run"),
            "--epochs", "1", "--size", str(SIZE), "--batch-size", "2", "--group-columns", "lighting"]  # fmt: skip
    for key, value in TINY.items():
        argv += ["--option", f"{key}={json.dumps(value)}"]
    assert run_cli("python -m export", "", "export.commands", argv) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["train"]["windows"] == 2 == report["validation"]["windows"]
    (lighting,) = report["validation"]["by_group"]["lighting"].values()
    assert lighting["windows"] == 2 and lighting["mae"] == report["validation"]["mae"]


def _run_train_cli(tmp_path: Path, *extra: str) -> int:
    argv = ["train", "--labels", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "run"), "--size", str(SIZE)]
    for key, value in TINY.items():
        argv += ["--option", f"{key}={json.dumps(value)}"]
    return run_cli("python -m export", "", "export.commands", [*argv, *extra])


def test_training_starts_from_the_init_checkpoint_and_records_it(tmp_path: Path) -> None:
    spec, _ = default_spec("NTCHW", frames=16, size=SIZE)
    torch.manual_seed(123)
    source = get_architecture("expresso-tsm").build(16, SIZE, TINY)
    init = tmp_path / "pretrained.pt"
    torch.save({f"model.{k}": v for k, v in source.state_dict().items()}, init)  # Lightning-style prefix
    config = TrainConfig(out=tmp_path / "run", options=TINY, size=SIZE, epochs=1, batch_size=4, seed=3, init=init)
    model, _ = start_model(config)
    assert all(torch.equal(value, source.state_dict()[key]) for key, value in model.state_dict().items())
    # a learning rate too small to move the weights: what train() saved is what it started from
    still = replace(config, learning_rate=1e-12, weight_decay=0.0)
    report = train(still, tiny_set(8, 0, ("a",)), tiny_set(4, 1, ("a",)), spec)
    saved = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    for name, parameter in source.named_parameters():
        assert torch.allclose(saved["state_dict"][name], parameter, atol=1e-6), name
    record = {"file": "pretrained.pt", "sha256": sha256_of(init), "format": "state_dict", "prefix": "model."}
    assert report["init"] == {**record, "reinitialised": []} == saved["init"]
    assert json.loads((tmp_path / "run" / "report.json").read_text())["config"]["init"] == str(init)


def test_a_misfit_init_checkpoint_is_refused_before_any_video_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = get_architecture("expresso-tsm").build(16, SIZE, {**TINY, "widths": [12]})
    torch.save(other.state_dict(), tmp_path / "other.pt")
    assert _run_train_cli(tmp_path, "--init", str(tmp_path / "other.pt")) == 4  # the labels CSV does not exist
    err = capsys.readouterr().err
    assert "does not fit architecture 'expresso-tsm'" in err and "wrong shapes" in err and "fix:" in err
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    assert _run_train_cli(tmp_path, "--init", str(tmp_path / "garbage.pt")) == 4
    assert "cannot be read as tensors only" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--batch-size", "0", "--batch-size must be at least 1, got 0 (fix: pass --batch-size 1 or more)"),
        ("--epochs", "0", "--epochs must be at least 1, got 0 (fix: pass --epochs 1 or more)"),
        ("--lr", "0", "--lr must be positive"),
        ("--size", "8", "needs frames of at least 16 pixels, got 8 (fix: pass --size 16 or more)"),
    ],
)
def test_impossible_train_options_are_refused_before_any_video_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    assert _run_train_cli(tmp_path, flag, value) == 2  # the labels CSV does not exist: it was never read
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("options", [TINY, {**TINY, "outputs": ["bdi_ii:BDI-II", "phq9:PHQ-9"]}], ids=["one", "two"])
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one_and_logs_every_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, object]
) -> None:
    spec, _ = default_spec("NTCHW", frames=16, size=SIZE)
    data, val = tiny_set(4, 0, ("a",)), tiny_set(3, 1, ("a",))
    whole = TrainConfig(
        out=tmp_path / "whole", options=options, size=SIZE, epochs=2, batch_size=2, seed=5, device="cpu"
    )
    train(whole, data, val, spec)
    cut = replace(whole, out=tmp_path / "cut")
    real_epoch = export_train.train_epoch

    def crash_in_epoch_2(*args: object) -> float:
        if args[-2] == 2:  # the epoch argument
            raise KeyboardInterrupt
        return real_epoch(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(export_train, "train_epoch", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(cut, data, val, spec)
    monkeypatch.undo()
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 1
    with pytest.raises(UsageError, match="epochs=2"):
        train(replace(cut, epochs=3, resume=True), data, val, spec)  # other settings: refused, not mixed
    report = train(replace(cut, resume=True), data, val, spec)
    assert [row["epoch"] for row in report["history"]] == [1, 2]
    ours = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["model"]
    theirs = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)
    log = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2] and all(row["device"] == "cpu" for row in log)
    assert {"train_mae", "val_mae", "baseline_mae", "lr", "seconds"} <= set(log[0])


def test_patience_stops_early_and_a_model_worse_than_the_baseline_is_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    spec, _ = default_spec("NTCHW", frames=16, size=SIZE)
    data = tiny_set(4, 0, ("a",))
    # a model that always says 63: validation MAE never improves after epoch 1, and the mean beats it
    monkeypatch.setattr(export_train, "predict", lambda model, d, *a, **k: np.full(len(d), 63.0, dtype=np.float32))
    config = TrainConfig(out=tmp_path / "run", options=TINY, size=SIZE, epochs=6, batch_size=2, seed=1, patience=2)
    report = train(config, data, data, spec)
    assert report["stopped_early"] == 3 and [row["epoch"] for row in report["history"]] == [1, 2, 3]
    assert report["best_epoch"] == 1 and report["beats_baseline"] is False
    assert "does NOT beat" in caplog.text
    assert report["history"][0]["train_mean"] == pytest.approx(float(data.scores.mean()))


def test_device_selection() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected and select_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="sees no CUDA GPU"):
            select_device("cuda")
    with pytest.raises(UsageError, match="not a torch device"):
        select_device("gpu0")


def test_an_init_checkpoint_of_another_architecture_is_refused_naming_the_one_it_fits(tmp_path: Path) -> None:
    path = tmp_path / "r3d_18.pth"
    torch.save(torchvision_state_dict("r3d_18"), path)
    with pytest.raises(CheckpointError, match=r"fit r3d_18 \(102/102 keys\) better .*pass --arch r3d_18"):
        start_model(TrainConfig(out=tmp_path / "run", options=TINY, size=SIZE, init=path))
