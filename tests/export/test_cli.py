"""``python -m export onnx | inspect | bench``: output, JSON and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.bundle import load_bundle, write_manifest
from edge.cli_support import run_cli
from export.onnx_export import max_opset
from export.zoo import get_architecture

REPO = Path(__file__).resolve().parents[2]
TINY = ["--frames", "16", "--size", "16", "--option", "stem=8", "--option", "widths=[8,8]", "--option", "blocks=[1,1]"]


def export_cli(*argv: str) -> int:
    return run_cli("python -m export", "test", "export.commands", list(argv))


def test_onnx_writes_a_bundle_and_says_the_weights_are_random(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    assert export_cli("onnx", *TINY, "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("WARNING: RANDOM WEIGHTS")
    assert "/ max(output std " in printed and NOT_A_DIAGNOSTIC_DEVICE in printed
    assert load_bundle(out).manifest["model"]["architecture_options"]["widths"] == [8, 8]

    assert export_cli("onnx", *TINY, "--out", str(out)) == 2  # exists: refused
    assert "--force" in capsys.readouterr().err
    assert export_cli("onnx", *TINY, "--force", "--json", "--out", str(out)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["random_weights"] is True and report["verification"]["passed"] is True
    check = report["verification"]
    assert check["denominator"] == max(check["output_std"], check["std_floor"]) and check["std_floor"] > 0
    assert check["ratio"] == check["max_abs_diff"] / check["denominator"]
    assert report["input"] == {"layout": "NTCHW", "frames": 16, "channels": 3, "height": 16, "width": 16}


def test_onnx_with_a_wrong_checkpoint_exits_4_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "r3d_head.pt"
    torch.save({"fc.weight": torch.zeros(1, 512), "fc.bias": torch.zeros(1)}, wrong)
    code = export_cli("onnx", *TINY, "--checkpoint", str(wrong), "--out", str(tmp_path / "b"))
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # after the progress bar
    assert code == 4 and "Traceback" not in err
    assert (
        last.startswith("python -m export: error: checkpoint")
        and "missing keys" in last
        and "stages.0.conv1.0.weight" in last
    )
    assert not (tmp_path / "b").exists()


def test_onnx_refuses_an_opset_torch_cannot_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = export_cli("onnx", *TINY, "--opset", "30", "--out", str(tmp_path / "b"))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"--opset 30 is outside 17 to {max_opset()}" in err and max_opset() >= 17
    assert not (tmp_path / "b").exists()


def test_onnx_from_a_checkpoint_records_its_hash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = {"stem": 8, "widths": [8, 8], "blocks": [1, 1]}
    path = tmp_path / "weights.pt"
    torch.save(get_architecture("expresso-tsm").build(16, 16, options).state_dict(), path)
    assert export_cli("onnx", *TINY, "--checkpoint", str(path), "--json", "--out", str(tmp_path / "b")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["random_weights"] is False
    assert report["weights"]["checkpoint_format"] == "state_dict" and len(report["weights"]["checkpoint_sha256"]) == 64


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        export_cli("onnx", "--arch", "resnet50", "--out", str(tmp_path / "x"))
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "--arch" in err and "'resnet50'" in err and "expresso-tsm" in err  # the bad value and the choices
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit) as caught:
        export_cli("bench", str(tmp_path), "--threads", "0")
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "--threads" in err and "got '0'" in err


def test_inspect_verifies_and_lists_backends(exported_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export_cli("inspect", str(exported_bundle)) == 0
    text = capsys.readouterr().out
    assert "sha256 ok" in text and "onnxruntime: can run fp32" in text and "WARNING: RANDOM WEIGHTS" in text
    assert export_cli("inspect", str(exported_bundle), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["hashes_verified"] is True
    assert report["backends"]["onnxruntime"] == {"available": True, "precisions": ["fp32"], "reason": ""}
    assert report["model"]["architecture"] == "expresso-tsm"

    with (exported_bundle / "model.fp32.onnx").open("r+b") as handle:
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 1]))
    assert export_cli("inspect", str(exported_bundle)) == 4
    assert "was modified" in capsys.readouterr().err


def _add_int8_copy(bundle_dir: Path) -> None:
    """Stand-in for calibration's output: the FP32 file listed again as an INT8 ONNX Runtime model."""
    manifest = load_bundle(bundle_dir).manifest
    shutil.copy(bundle_dir / "model.fp32.onnx", bundle_dir / "model.int8.onnx")
    record = {"path": "model.int8.onnx", "kind": "onnx", "precision": "int8", "target": "onnxruntime-cpu"}
    manifest["artifacts"] = [*manifest["artifacts"], record]
    write_manifest(bundle_dir, manifest)


def test_bench_reports_each_precision_and_thread_count(
    exported_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_int8_copy(exported_bundle)
    assert export_cli("bench", str(exported_bundle), "--threads", "1,2", "--runs", "3", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    settings = {(r["backend"], r["precision"], r["threads"]) for r in report["results"]}
    assert settings == {("onnxruntime", p, t) for p in ("int8", "fp32") for t in (1, 2)}
    for result in report["results"]:
        assert 0 < result["median_ms_per_window"] <= result["p90_ms_per_window"]
        assert result["windows_per_s"] > 0 and result["gmac_per_s"] > 0
    assert report["macs_per_window"] > 0
    assert {(s["precision"], s["threads"]) for s in report["speedups"]} == {("int8", 1), ("int8", 2)}
    assert [row["threads"] for row in report["int8"]["by_threads"]] == [1, 2]  # a verdict per thread count
    assert report["int8"]["accuracy"]["quantize_static_defaults"] is None
    assert "--calib SET" in report["int8"]["accuracy"]["baseline_note"]
    assert export_cli("bench", str(exported_bundle), "--threads", "1", "--runs", "2") == 0
    assert "baseline: not measured" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        export_cli("bench", "--help")
    assert "baseline needs --calib SET" in " ".join(capsys.readouterr().out.split())  # however argparse wraps it
    assert export_cli("bench", str(exported_bundle), "--threads", "1", "--runs", "2", "--precision", "fp32") == 0
    table = capsys.readouterr().out
    assert "GMAC/s" in table and "int8" not in table
    assert export_cli("bench", str(exported_bundle), "--backend", "tpu") == 2


def test_module_entry_point_and_help_examples() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "export", "onnx", "--help"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "examples:" in done.stdout and "--checkpoint" in done.stdout and "expresso-tsm" in done.stdout
