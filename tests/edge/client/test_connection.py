"""The integrator's TLS options: a client certificate goes with its key, and files that cannot be loaded are one
clear line with the fix, before any connection (never a traceback, never a silent fall-back to no certificate)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main

CONTROL = ["control", "--port", "1", "--device", "ab" * 10, "pause"]


@pytest.mark.parametrize("given", ["--cert", "--key"])
def test_a_client_certificate_without_its_key_or_the_reverse_is_refused(
    tmp_path: Path, given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = tmp_path / "client.pem"
    pem.write_text("not used")
    assert main([*CONTROL, given, str(pem)]) == 3  # it was ignored: the broker saw no certificate at all
    assert "--cert and --key go together" in capsys.readouterr().err


def test_tls_files_that_cannot_be_loaded_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    assert main([*CONTROL, "--cert", str(garbage), "--key", str(garbage)]) == 3
    assert main([*CONTROL, "--ca", str(tmp_path / "missing.pem")]) == 3
    err = capsys.readouterr().err
    assert err.count("cannot load the TLS files") == 2 and "Traceback" not in err
