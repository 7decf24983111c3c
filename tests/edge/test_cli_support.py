"""With ``--json``, a report command's errors come as one JSON object on stdout too; without, stdout stays empty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli_support import run_cli


def export_cli(*argv: str) -> int:
    return run_cli("python -m export", "", "export.commands", list(argv))


def test_a_project_error_is_printed_as_json_with_its_fix_and_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-bundle"
    code = export_cli("inspect", str(missing), "--json")
    out, err = capsys.readouterr()
    error = json.loads(out)["error"]
    assert code == error["exit_code"] == 4  # a bundle error
    assert str(missing) in error["message"] and error["fix"]
    assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err
    assert export_cli("inspect", str(missing)) == 4
    assert capsys.readouterr().out == ""  # people get the one stderr line only


def test_a_usage_error_is_printed_as_json_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        export_cli("evaluate", str(tmp_path), "--json")  # --labels is missing
    assert done.value.code == 2
    out, err = capsys.readouterr()
    error = json.loads(out)["error"]
    assert error["exit_code"] == 2 and "--labels" in error["message"] and "--help" in error["fix"]
    assert "usage:" in err
