"""Shared command-line plumbing: subcommands discovered from a package, errors as one line and an exit code.

A subcommand is a module with ``NAME``, ``HELP``, ``EXAMPLES``, ``add_arguments(parser)`` and
``run(args) -> int``; dropping such a module into a ``commands`` package adds the subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, NoReturn

from edge.errors import ExpressoError, UsageError
from edge.quiet import native_noise_filtered


def _command_modules(package: str, argv: Sequence[str]) -> list[Any]:
    """The module of the command ``argv`` names, or every command's module (for help and usage errors).

    Importing only the chosen command keeps light commands (``check-config``, ``subscribe``) from paying for the
    heavy imports (mediapipe, ONNX Runtime, torch) of the others. Without the ``device`` extra installed, the
    commands that need it are listed with that fix instead of breaking the help.
    """
    root = importlib.import_module(package)
    names = sorted(info.name for info in pkgutil.iter_modules(root.__path__) if not info.name.startswith("_"))
    chosen = next((arg.replace("-", "_") for arg in argv if not arg.startswith("-")), None)
    if chosen in names:
        names = [chosen]
    return [_command_module(f"{package}.{name}") for name in names]


def _command_module(name: str) -> Any:
    """Import one command; a missing dependency gives a stand-in that says which extra to install."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        missing, command = error.name, name.rsplit(".", 1)[-1].replace("_", "-")

    def unavailable(args: argparse.Namespace) -> int:
        raise UsageError(
            f"command {command} needs {missing}, which is not installed (the integrator client alone is)",
            fix="pip install 'expresso-edge[device]'",
        )

    unavailable.accepts_anything = True  # type: ignore[attr-defined]  # its options are unknown here

    return SimpleNamespace(
        NAME=command,
        HELP=f"(unavailable: needs {missing}; pip install 'expresso-edge[device]')",
        EXAMPLES=f"  pip install 'expresso-edge[device]'   # then: python -m edge {command} --help\n",
        add_arguments=lambda parser: None,
        run=unavailable,
    )


def print_error(prog: str, message: str, *, fix: str | None, exit_code: int, as_json: bool) -> None:
    """An error as one line on stderr and, for ``--json`` runs, as one JSON object on stdout for scripts."""
    line = f"{message} (fix: {fix})" if fix else message
    print(f"{prog}: error: {line}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": {"message": message, "fix": fix, "exit_code": exit_code}}))


class _Parser(argparse.ArgumentParser):
    """argparse that, for a ``--json`` command line, also prints its usage errors as JSON on stdout."""

    def __init__(self, *args: Any, json_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.json_errors = json_errors

    def error(self, message: str) -> NoReturn:
        if not self.json_errors:
            super().error(message)
        self.print_usage(sys.stderr)
        print_error(self.prog, message, fix=f"see {self.prog} --help", exit_code=2, as_json=True)
        self.exit(2)


def build_parser(prog: str, description: str, package: str, argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """An argument parser with a subcommand per module of ``package`` (only the one ``argv`` names, if any)."""
    json_errors = "--json" in argv
    parser = _Parser(prog=prog, description=description, json_errors=json_errors)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log detail (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _command_modules(package, argv):
        command = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.HELP,
            epilog="examples:\n" + module.EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            json_errors=json_errors,
        )
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def configure_logging(verbosity: int) -> None:
    """One event per line on stderr (journald adds the time)."""
    level = logging.WARNING - 10 * min(verbosity, 2) if verbosity else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)


def run_cli(prog: str, description: str, package: str, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the chosen subcommand and turn project errors into one line and an exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog, description, package, arguments)
    args, rest = parser.parse_known_args(arguments)
    if rest and not getattr(getattr(args, "handler", None), "accepts_anything", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    configure_logging(args.verbose)
    as_json = bool(getattr(args, "json", False))
    try:
        with native_noise_filtered(enabled=args.verbose < 2):  # mediapipe/absl start-up lines; -vv keeps them
            return int(args.handler(args))
    except ExpressoError as exc:
        print_error(prog, exc.message, fix=exc.fix, exit_code=exc.exit_code, as_json=as_json)
        return exc.exit_code
    except KeyboardInterrupt:
        print_error(prog, "interrupted", fix=None, exit_code=130, as_json=as_json)
        return 130


def print_report(report: dict[str, Any], *, as_json: bool, render: Any) -> None:
    """Print ``report`` as JSON for scripts or through ``render(report) -> str`` for people."""
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=False, default=str))
    else:
        print(render(report))


def int_list(text: str, option: str, *, minimum: int, what: str, example: str) -> list[int]:
    """A comma-separated list of integers of at least ``minimum``; UsageError naming ``option`` otherwise."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < minimum:
        raise UsageError(f"{option} {text!r} is not a list of {what}", fix=f"pass e.g. {option} {example}")
    return values


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """The ``--json`` flag every report command has."""
    parser.add_argument("--json", action="store_true", help="print the report as JSON for scripts")
