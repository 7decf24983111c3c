"""Every subcommand of the three command lines prints its help with examples and exits 0."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from edge.cli_support import run_cli

PACKAGES = ("edge.commands", "export.commands", "calibration.commands")


def _commands() -> list[tuple[str, str]]:
    found = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.iter_modules(root.__path__):
            if not info.name.startswith("_"):
                found.append((package, importlib.import_module(f"{package}.{info.name}").NAME))
    return found


@pytest.mark.parametrize(("package", "name"), _commands())
def test_help_prints_usage_and_examples(package: str, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(f"python -m {package.split('.')[0]}", "", package, [name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: python -m {package.split('.')[0]} {name}" in out
    assert "examples:" in out and "python -m" in out.split("examples:", 1)[1]


def test_there_are_commands_in_every_package() -> None:
    assert {package for package, _ in _commands()} == set(PACKAGES)
    assert len(_commands()) >= 13
