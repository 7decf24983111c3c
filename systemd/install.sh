#!/usr/bin/env bash
# Install, upgrade or uninstall expresso-edge as a systemd service: the device side only (no PyTorch), a virtual
# environment in PREFIX (default /opt/expresso-edge), the unit, and an example configuration in
# /etc/expresso-edge/config.toml (never overwritten). Research and screening aid only: not a diagnostic device.
#
#   sudo systemd/install.sh                      # install (or upgrade in place), enable, (re)start
#   sudo systemd/install.sh --no-start           # install and enable only
#   systemd/install.sh --dry-run                 # say what would be done, change nothing
#   systemd/install.sh --root /tmp/img --no-systemd   # stage into a root prefix (image builds, tests)
#   sudo systemd/install.sh --uninstall          # remove venv and unit; keep configuration and state
#   sudo systemd/install.sh --uninstall --purge  # also delete /etc/expresso-edge and /var/lib/expresso-edge
#   sudo systemd/install.sh --slim               # leave out jax/jaxlib/ml_dtypes (~380 MB the face mesh never uses)
#
# Options: --root DIR (every path below DIR; implies --no-systemd unless DIR is /), --prefix DIR (default
# /opt/expresso-edge), --from SRC (a checkout, sdist or wheel; default this checkout), --no-systemd (never call
# systemctl), --no-start, --dry-run, --uninstall, --purge, --slim. A virtual environment is tied to its path: one made
# under --root runs from there only, so stage images with --prefix matching the final path. A running daemon is
# stopped before pip touches its files and started again at the end (left stopped with --no-start).
# On a Jetson, create the venv with --system-site-packages to see JetPack's tensorrt, pycuda and OpenCV:
#   sudo EXPRESSO_VENV_FLAGS=--system-site-packages systemd/install.sh
# PYTHON picks the interpreter for the venv (default python3).
# pip honours its usual environment (PIP_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX ...) for offline installs.
# Exit codes: 0 done, 2 usage or missing requirement (root, systemctl), 1 a step failed.
set -euo pipefail
unset PYTHONPATH PYTHONHOME   # the device's venv alone: a caller's path would make pip skip the install

HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(dirname "$HERE")"
ROOT=/
PREFIX=/opt/expresso-edge
START=1
SYSTEMD=1
DRY=0
ACTION=install
PURGE=0
SLIM=0

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
die() { echo "install.sh: $1" >&2; exit "${2:-2}"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --root) [[ $# -ge 2 ]] || die "--root needs a directory"; ROOT="$2"; shift ;;
        --prefix) [[ $# -ge 2 ]] || die "--prefix needs a directory"; PREFIX="$2"; shift ;;
        --from) [[ $# -ge 2 ]] || die "--from needs a checkout, sdist or wheel"; SRC="$2"; shift ;;
        --no-start) START=0 ;;
        --no-systemd) SYSTEMD=0 ;;
        --dry-run) DRY=1 ;;
        --uninstall) ACTION=uninstall ;;
        --purge) PURGE=1 ;;
        --slim) SLIM=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
if [[ $PURGE -eq 1 && $ACTION != uninstall ]]; then die "--purge goes with --uninstall"; fi
[[ "$PREFIX" == /* ]] || die "--prefix must be an absolute path, got $PREFIX"
ROOT="${ROOT%/}"
if [[ -n "$ROOT" ]]; then SYSTEMD=0; fi   # a staging root: its units are not this machine's

DEST="$ROOT$PREFIX"                       # the venv and README
CONF_DIR="$ROOT/etc/expresso-edge"
UNIT="$ROOT/etc/systemd/system/expresso-edge.service"
STATE_DIR="$ROOT/var/lib/expresso-edge"   # the unit's StateDirectory=; DynamicUser= keeps it in /var/lib/private
PRIVATE_STATE="$ROOT/var/lib/private/expresso-edge"

run() {  # print each change; under --dry-run only print it
    if [[ $DRY -eq 1 ]]; then echo "    would run: $*"; else "$@"; fi
}

if [[ $DRY -eq 0 && -z "$ROOT" && $EUID -ne 0 ]]; then
    die "run as root (sudo $0), or stage with --root DIR, or look first with --dry-run"
fi
if [[ $SYSTEMD -eq 1 ]] && ! command -v systemctl >/dev/null; then
    die "systemctl not found: pass --no-systemd to install without enabling the service"
fi

if [[ $ACTION == uninstall ]]; then
    echo "==> uninstall from ${ROOT:-/} (prefix $PREFIX)"
    if [[ $SYSTEMD -eq 1 ]]; then
        run systemctl disable --now expresso-edge.service || true
    fi
    run rm -f "$UNIT"
    if [[ $SYSTEMD -eq 1 ]]; then run systemctl daemon-reload; fi
    run rm -rf "$DEST"
    if [[ $PURGE -eq 1 ]]; then
        echo "    purge: configuration and state (device secret, consent record, outbox) are deleted"
        run rm -rf "$CONF_DIR" "$STATE_DIR" "$PRIVATE_STATE"
    else
        echo "    kept: $CONF_DIR and the state in $STATE_DIR (device secret, consent, outbox); --purge deletes them"
    fi
    echo "done"
    exit 0
fi

# -- install or upgrade --------------------------------------------------------------------------------------
if [[ -x "$DEST/venv/bin/python" ]]; then
    OLD="$("$DEST/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("expresso-edge"))' 2>/dev/null || echo unknown)"
    echo "==> upgrade in place: $DEST/venv (installed: expresso-edge $OLD)"
else
    echo "==> virtual environment in $DEST/venv"
    run install -d -m 0755 "$DEST"
    # shellcheck disable=SC2086  # EXPRESSO_VENV_FLAGS is a list of flags
    run "${PYTHON:-python3}" -m venv ${EXPRESSO_VENV_FLAGS:-} "$DEST/venv"
fi
if [[ $SYSTEMD -eq 1 ]] && systemctl is-active --quiet expresso-edge.service; then
    # pip replaces the files under a running daemon, which imports some modules on first use: it could mix two
    # versions. Stopped, it flushes what waits in memory to its outbox; it is started again at the end.
    echo "==> stopping the running daemon for the upgrade"
    run systemctl stop expresso-edge.service
    trap 'echo "install.sh: failed with the daemon stopped: fix the cause and rerun, or start it again" >&2' ERR
    if [[ $START -eq 0 ]]; then echo "    --no-start: it stays stopped (systemctl start expresso-edge)"; fi
fi
# The device extra only: the daemon's dependencies, never the PyTorch side (export).
if [[ -f "$SRC" ]]; then TARGET="$SRC[device]"; else TARGET="$(cd "$SRC" && pwd)[device]"; fi
LEFT=()  # what pip's in-tree build leaves in a checkout (root-owned under sudo): removed unless it was there
for made in build expresso_edge.egg-info; do [[ ! -d "$SRC" || -e "$SRC/$made" ]] || LEFT+=("$SRC/$made"); done
run "$DEST/venv/bin/python" -m pip install -q --upgrade "$TARGET"
if [[ $DRY -eq 0 && ${#LEFT[@]} -gt 0 ]]; then rm -rf "${LEFT[@]}"; fi
if [[ $SLIM -eq 1 ]]; then
    # mediapipe declares jax, jaxlib and ml_dtypes (its model tools use them); the face mesh and face detection the
    # daemon runs do not import them. Removed, then the face mesh is built once to prove it; put back if it fails.
    run "$DEST/venv/bin/python" -m pip uninstall -y -q jax jaxlib ml_dtypes
    if [[ $DRY -eq 0 ]] && ! "$DEST/venv/bin/python" -c \
        "import mediapipe as mp; mp.solutions.face_mesh.FaceMesh(refine_landmarks=True).close()" 2>/dev/null; then
        echo "    --slim: mediapipe needs jax here after all; reinstalling it"
        run "$DEST/venv/bin/python" -m pip install -q --upgrade "$TARGET"
    fi
fi
if [[ -f "$SRC/README.md" ]]; then run install -m 0644 "$SRC/README.md" "$DEST/README.md"; fi

echo "==> configuration in $CONF_DIR"
run install -d -m 0755 "$CONF_DIR"
if [[ -e "$CONF_DIR/config.toml" ]]; then
    echo "    keeping the existing $CONF_DIR/config.toml"
else
    run install -m 0644 "$HERE/config.example.toml" "$CONF_DIR/config.toml"
    [[ $DRY -eq 1 ]] || echo "    wrote $CONF_DIR/config.toml: set camera.source, mqtt.host and privacy.consent before starting"
fi

echo "==> unit $UNIT"
run install -d -m 0755 "$(dirname "$UNIT")"
if [[ $DRY -eq 1 ]]; then
    echo "    would write the unit with ExecStart=$PREFIX/venv/bin/python -m edge run ..."
else
    sed "s#/opt/expresso-edge#$PREFIX#g" "$HERE/expresso-edge.service" > "$UNIT.tmp"
    chmod 0644 "$UNIT.tmp"
    mv "$UNIT.tmp" "$UNIT"
fi

if [[ $DRY -eq 0 ]]; then
    NEW="$("$DEST/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("expresso-edge"))')"
    echo "==> installed expresso-edge $NEW ($(du -sh "$DEST/venv" | cut -f1) in $DEST/venv)"
    # a staging root: its state directory, not this machine's (the camera is checked on the target)
    PREFLIGHT=("$DEST/venv/bin/python" -m edge check-config "$CONF_DIR/config.toml")
    if [[ -n "$ROOT" ]]; then PREFLIGHT+=(--set "device.state_dir=$STATE_DIR"); fi
    echo "==> preflight: ${PREFLIGHT[*]}"
    "${PREFLIGHT[@]}" || echo "    the configuration is not ready yet (see above); fix it, then rerun check-config"
fi

if [[ $SYSTEMD -eq 1 ]]; then
    run systemctl daemon-reload
    run systemctl enable expresso-edge.service
    if [[ $START -eq 1 ]]; then
        run systemctl restart expresso-edge.service
        [[ $DRY -eq 1 ]] || systemctl --no-pager status expresso-edge.service || true
    fi
    echo "done: journalctl -u expresso-edge -f to follow the logs"
else
    echo "done (systemd left alone: enable with systemctl enable --now expresso-edge on the target)"
fi
