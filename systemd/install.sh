#!/usr/bin/env bash
# Install expresso-edge as a systemd service: a virtual environment in /opt/expresso-edge, the unit, and an
# example configuration in /etc/expresso-edge/config.toml (kept when one exists). Run as root from a checkout:
#   sudo systemd/install.sh            # install, enable, start
#   sudo systemd/install.sh --no-start # install and enable only
# On a Jetson, create the venv with --system-site-packages first to see JetPack's tensorrt and pycuda:
#   sudo EXPRESSO_VENV_FLAGS=--system-site-packages systemd/install.sh
set -euo pipefail

PREFIX=/opt/expresso-edge
CONF_DIR=/etc/expresso-edge
UNIT=/etc/systemd/system/expresso-edge.service
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(dirname "$HERE")"
START=1
[[ "${1:-}" == "--no-start" ]] && START=0

if [[ $EUID -ne 0 ]]; then
    echo "install.sh: run as root (sudo $0)" >&2
    exit 2
fi
command -v systemctl >/dev/null || { echo "install.sh: systemd is required" >&2; exit 2; }

echo "==> virtual environment in $PREFIX/venv"
python3 -m venv ${EXPRESSO_VENV_FLAGS:-} "$PREFIX/venv"
"$PREFIX/venv/bin/python" -m pip install -q --upgrade pip
"$PREFIX/venv/bin/python" -m pip install -q "$SRC"
install -m 0644 "$SRC/README.md" "$PREFIX/README.md"

echo "==> configuration in $CONF_DIR"
install -d -m 0755 "$CONF_DIR"
if [[ -e "$CONF_DIR/config.toml" ]]; then
    echo "    keeping the existing $CONF_DIR/config.toml"
else
    install -m 0644 "$HERE/config.example.toml" "$CONF_DIR/config.toml"
    echo "    wrote $CONF_DIR/config.toml: set camera.source, mqtt.host and privacy.consent before starting"
fi
"$PREFIX/venv/bin/python" -m edge check-config "$CONF_DIR/config.toml"

echo "==> unit $UNIT"
install -m 0644 "$HERE/expresso-edge.service" "$UNIT"
systemctl daemon-reload
systemctl enable expresso-edge.service
if [[ $START -eq 1 ]]; then
    systemctl restart expresso-edge.service
    systemctl --no-pager status expresso-edge.service || true
fi
echo "done: journalctl -u expresso-edge -f to follow the logs"
