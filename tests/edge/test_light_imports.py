"""Light commands stay light: only the chosen subcommand is imported, and ``edge.face`` loads mediapipe on use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import edge.face

ROOT = Path(__file__).resolve().parents[2]


def test_check_config_runs_without_importing_mediapipe_or_the_daemon(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from edge.cli import main\n"
        f"code = main(['check-config', {str(ROOT / 'systemd' / 'config.example.toml')!r}, '--set', "
        f"'camera.source={ROOT / 'samples' / 'clip_000_score04.3.mp4'}', '--set', 'device.state_dir={tmp_path}'])\n"
        "heavy = sorted(m for m in ('mediapipe', 'edge.daemon', 'edge.face.pipeline') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stdout and "HEAVY []" in done.stdout


def test_every_public_name_of_edge_face_resolves_from_its_module() -> None:
    assert sorted(edge.face.__all__) == sorted(edge.face._SOURCES)
    for name in edge.face.__all__:
        assert getattr(edge.face, name) is getattr(
            __import__(f"edge.face.{edge.face._SOURCES[name]}", fromlist=[name]), name
        )


def test_top_level_help_still_lists_every_command() -> None:
    done = subprocess.run([sys.executable, "-m", "edge", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for name in ("run", "demo", "check-config", "replay", "bench-pipeline"):
        assert name in done.stdout
