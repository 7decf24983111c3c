import sys

from edge.cli_support import run_cli

sys.exit(run_cli("python -m calibration", "Build INT8 calibration sets from videos.", "calibration.commands"))
