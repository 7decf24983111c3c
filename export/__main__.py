import sys

from edge.cli_support import run_cli

sys.exit(run_cli("python -m export", "Turn PyTorch checkpoints into expresso-edge model bundles.", "export.commands"))
