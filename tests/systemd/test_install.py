"""install.sh in a temporary root prefix, without systemctl: install, upgrade in place, dry run, uninstall, purge.

pip installs a wheel of this checkout with ``--no-deps`` from no index (no network in tests): what is checked is
the installer's own work and that the package carries what an installed device needs (the demo's sample video).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
INSTALL = REPO / "systemd" / "install.sh"
PREFIX = "/opt/expresso-edge"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = out / "src"  # built from a copy: an in-tree build would leave build/ and *.egg-info in the checkout
    skip = shutil.ignore_patterns(".git", ".venv", ".*_cache", "__pycache__", "build", "*.egg-info", "tests", "runs")
    shutil.copytree(REPO, source, symlinks=True, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (found,) = out.glob("expresso_edge-*.whl")
    return found


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """No network for pip, and a systemctl that records any call (a staging root must never call it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "systemctl-called"}\nexit 1\n')
    fake.chmod(0o755)
    yield {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "PIP_NO_DEPS": "1",
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    assert not (tmp_path / "systemctl-called").exists()


def install(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.slow
def test_install_upgrade_uninstall_and_purge_in_a_root_prefix(tmp_path: Path, wheel: Path, env: dict[str, str]) -> None:
    root = tmp_path / "root"
    out = install(root, env, "--from", str(wheel)).stdout
    venv = root / PREFIX.lstrip("/") / "venv"
    assert "virtual environment in" in out and (venv / "bin" / "python").exists()
    # the preflight looked at this machine's /var/lib/expresso-edge, not the staged one
    assert f"check-config {root}/etc/expresso-edge/config.toml --set device.state_dir={root}/var/lib/" in out
    unit = (root / "etc/systemd/system/expresso-edge.service").read_text()
    assert f"ExecStart={PREFIX}/venv/bin/python -m edge run" in unit
    config = root / "etc/expresso-edge/config.toml"
    assert config.read_text() == (REPO / "systemd" / "config.example.toml").read_text()
    # the demo's sample video is package data: `expresso-edge demo` finds it on an installed device
    (video,) = venv.glob("lib/python*/site-packages/edge/assets/sample_video.mp4")
    assert not video.is_symlink() and video.stat().st_size == (REPO / "samples/clip_000_score04.3.mp4").stat().st_size
    assert not list(venv.glob("lib/python*/site-packages/torch"))  # the device side only
    (bundle,) = venv.glob("lib/python*/site-packages/edge/assets/demo_bundle")  # the whole demo bundle
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        p.name for p in (REPO / "edge/assets/demo_bundle").iterdir()
    )

    config.write_text(config.read_text() + "# the operator's edit\n")
    state = root / "var/lib/expresso-edge"
    state.mkdir(parents=True)
    (state / "device.secret").write_text("secret")
    out = install(root, env, "--from", str(wheel)).stdout
    assert "upgrade in place" in out and "expresso-edge 0.1.0" in out
    assert config.read_text().endswith("# the operator's edit\n") and (state / "device.secret").exists()

    out = install(root, env, "--uninstall").stdout
    assert not venv.exists() and not (root / "etc/systemd/system/expresso-edge.service").exists()
    assert config.exists() and (state / "device.secret").exists() and "kept" in out
    install(root, env, "--uninstall", "--purge")
    assert not config.exists() and not state.exists()


FAKE_VENV_PYTHON = """#!/bin/sh
case "$*" in
  *"pip install"*) for arg; do case "$arg" in  # what pip's in-tree build of a checkout leaves behind
      *"[device]") dir="${arg%"[device]"}"; mkdir -p "$dir/build" "$dir/expresso_edge.egg-info" ;; esac; done ;;
  *importlib.metadata*) echo 0.1.0 ;;
esac
"""


def test_an_upgrade_from_a_checkout_leaves_no_build_output_in_it(tmp_path: Path, env: dict[str, str]) -> None:
    # pip builds a checkout in place: build/ and *.egg-info stayed in it (root-owned under sudo)
    root, checkout = tmp_path / "root", tmp_path / "checkout"
    python = root / PREFIX.lstrip("/") / "venv" / "bin" / "python"  # an installed venv: the upgrade path
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_VENV_PYTHON)
    python.chmod(0o755)
    checkout.mkdir()
    (checkout / "build").mkdir()  # there before: the operator's, kept
    install(root, env, "--from", str(checkout))
    assert (checkout / "build").exists() and not (checkout / "expresso_edge.egg-info").exists()
    shutil.rmtree(checkout / "build")
    install(root, env, "--from", str(checkout))
    assert not (checkout / "build").exists()


def test_a_dry_run_changes_nothing(tmp_path: Path, env: dict[str, str]) -> None:
    root = tmp_path / "root"
    out = install(root, env, "--dry-run", "--slim").stdout
    assert "would run:" in out and "pip install" in out and "[device]" in out
    assert "pip uninstall -y -q jax jaxlib ml_dtypes" in out
    assert "wrote" not in out  # it said it wrote the configuration
    assert not root.exists()
    assert "would run: rm -rf" in install(root, env, "--uninstall", "--purge", "--dry-run").stdout
    assert not root.exists()


def test_an_upgrade_stops_a_running_daemon_before_pip_touches_its_files(tmp_path: Path, env: dict[str, str]) -> None:
    answers = tmp_path / "bin" / "systemctl"  # this time a machine whose service is running
    answers.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "systemctl-asked"}\nexit 0\n')
    done = subprocess.run(["bash", str(INSTALL), "--dry-run"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    stop = lines.index("    would run: systemctl stop expresso-edge.service")
    pip = next(i for i, line in enumerate(lines) if "pip install" in line)
    restart = lines.index("    would run: systemctl restart expresso-edge.service")
    assert stop < pip < restart
    assert (tmp_path / "systemctl-asked").read_text() == "is-active --quiet expresso-edge.service\n"  # a dry run


def test_usage_errors_exit_2(tmp_path: Path, env: dict[str, str]) -> None:
    for args in (["--purge"], ["--prefix", "relative"], ["--bogus"]):
        done = subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, env=env, timeout=30)
        assert done.returncode == 2 and done.stderr.startswith("install.sh: "), args
