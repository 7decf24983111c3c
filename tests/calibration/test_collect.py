"""Calibration sets: written from in-memory windows, summary counts, loading, hold-out split, batches."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from tiny_bundle import make_bundle, make_windows

from calibration.collect import PRIVACY_NOTE, Collected, collect_from_windows, write_set
from calibration.dataset import load_set
from edge.errors import InputError
from edge.preprocess import window_to_input


def test_set_round_trip_and_summary(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    windows = make_windows(10)
    collected = collect_from_windows(windows, source="clip_a.mp4", label=21.0)
    collected.rejected.update({"face_lost": 3, "blur": 1})
    summary = write_set(tmp_path / "set", collected, bundle.input, bundle.tiles, manifest_sha256="ab" * 32)
    assert summary["windows"] == 10 and summary["windows_seen"] == 14
    assert summary["rejected"] == {"face_lost": 3, "blur": 1}
    assert summary["sources"] == 1 and summary["labelled_windows"] == 10
    assert summary["privacy"] == PRIVACY_NOTE and "never" in PRIVACY_NOTE
    assert json.loads((tmp_path / "set" / "summary.json").read_text())["manifest_sha256"] == "ab" * 32
    cset = load_set(tmp_path / "set")
    assert cset.frames.dtype == np.uint8 and np.array_equal(cset.frames[3], windows[3])
    cset.check_fits(bundle.input, bundle.tiles)
    batch = next(cset.batches([3, 4], bundle.input))
    np.testing.assert_array_equal(batch[0:1], window_to_input(windows[3], bundle.input))


def test_hold_out_takes_the_last_windows_of_every_source(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    collected = Collected()
    sizes = {"a": 12, "b": 8, "c": 1}  # c is too small to split: all of it calibrates
    for name, size in sizes.items():
        index = collected.add_source(name)
        for frames in make_windows(size, seed=index):
            collected.add(frames, index)
    write_set(tmp_path / "set", collected, bundle.input, bundle.tiles)
    cset = load_set(tmp_path / "set")
    gap = cset.overlapping_windows()
    assert gap + 2 <= sizes["b"] and sizes["c"] < gap + 2
    calib, held = cset.split(0.25)
    a, b, c = (np.flatnonzero(cset.source == s) for s in range(3))
    assert list(held) == [*a[-3:], *b[-2:]]  # round(12 / 4) and round(8 / 4) from the end of each video
    assert list(calib) == [*a[: 12 - 3 - gap], *b[: 8 - 2 - gap], *c]  # minus the windows overlapping each hold-out
    assert list(cset.split(0.25)[1]) == list(held)  # deterministic


def test_hold_out_needs_one_source_large_enough(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    collected = Collected()
    for name in ("a", "b"):
        index = collected.add_source(name)
        collected.add(make_windows(1, seed=index)[0], index)
    write_set(tmp_path / "set", collected, bundle.input, bundle.tiles)
    with pytest.raises(InputError, match="too few to hold some out") as caught:
        load_set(tmp_path / "set").split(0.25)
    assert "each video" in str(caught.value.fix)


def test_hold_out_of_one_source_leaves_a_gap_of_the_windows_sharing_frames(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    write_set(tmp_path / "set", collect_from_windows(make_windows(12)), bundle.input, bundle.tiles)
    cset = load_set(tmp_path / "set")
    gap = cset.overlapping_windows()
    assert gap == -(-bundle.input.frames // bundle.input.window_stride) - 1 and gap > 0
    calib, held = cset.split(0.25)
    assert list(held) == [9, 10, 11]
    assert list(calib) == list(range(9 - gap))  # no calibration window shares a frame with a held-out one


def test_empty_or_mismatched_sets_are_refused(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    empty = Collected()
    empty.rejected["face_lost"] = 7
    with pytest.raises(InputError, match="face_lost: 7"):
        write_set(tmp_path / "none", empty, bundle.input, bundle.tiles)
    odd = collect_from_windows([np.zeros((2, 8, 8, 3), np.uint8)])
    with pytest.raises(InputError, match="do not fit"):
        write_set(tmp_path / "odd", odd, bundle.input, bundle.tiles)
    with pytest.raises(InputError, match="not a calibration set"):
        load_set(tmp_path)


def test_a_set_resampled_at_another_rate_than_the_bundle_is_refused(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    other = dataclasses.replace(bundle.input, sample_fps=bundle.input.sample_fps * 2)
    write_set(tmp_path / "set", collect_from_windows(make_windows(4)), other, bundle.tiles)
    cset = load_set(tmp_path / "set")
    cset.check_fits(other, bundle.tiles)
    with pytest.raises(InputError, match=f"resampled at {other.sample_fps} fps"):
        cset.check_fits(bundle.input, bundle.tiles)


@pytest.mark.slow
def test_collect_command_runs_the_face_pipeline_on_a_sample_video(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli_support import run_cli

    samples = Path(__file__).resolve().parents[2] / "samples"
    videos = sorted(samples.glob("*.mp4"))
    assert videos, f"{samples} has no videos (they are committed)"
    argv = ["collect", str(videos[0]), "--out", str(tmp_path / "set"), "--max-windows", "3", "--json"]
    argv += ["--labels", str(samples / "labels.csv")]
    assert run_cli("python -m calibration", "", "calibration.commands", argv) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["windows"] == 3 and summary["sources"] == 1 and summary["labelled_windows"] == 3
    assert "never" in err and "bundle" in err
    cset = load_set(tmp_path / "set")
    assert cset.frames.shape == (3, 16, 112, 112, 3) and np.isfinite(cset.labels).all()
    assert cset.frames.std() > 5  # real face crops, not blank frames


@pytest.mark.slow
def test_a_live_source_goes_through_the_daemons_capture_and_face_pipeline() -> None:
    from calibration.collect import collect_live, spec_and_tiles

    video = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.mp4"))[0]
    spec, tiles = spec_and_tiles(None)
    collected = collect_live(str(video), spec, tiles, seconds=60, max_windows=2, realtime=False)
    assert len(collected.frames) == 2 and collected.sources == [str(video)]
    assert collected.frames[0].shape == (spec.frames, spec.height, spec.width, 3)
    assert collected.frames[0].std() > 5


def test_collect_wants_videos_or_a_camera_not_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli_support import run_cli

    both = ["collect", "a.mp4", "--camera", "0", "--out", str(tmp_path / "set")]
    assert run_cli("python -m calibration", "", "calibration.commands", both) == 2
    assert "not both" in capsys.readouterr().err
    assert run_cli("python -m calibration", "", "calibration.commands", ["collect", "--out", str(tmp_path)]) == 2
    assert not (tmp_path / "set").exists()
