"""``python -m export keygen``: the same command as ``python -m edge keygen`` (engineer's bundle signing key)."""

from edge.commands.keygen import EXAMPLES, HELP, NAME, add_arguments, run

__all__ = ["EXAMPLES", "HELP", "NAME", "add_arguments", "run"]
