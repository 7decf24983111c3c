# Set-up and entry points. Every target installs what it needs into .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Empty: torch comes from pip's configured index. Elsewhere, TORCH_INDEX=https://download.pytorch.org/whl/cpu
# keeps a fresh x86 machine from downloading the CUDA build.
TORCH_INDEX ?=

.PHONY: demo test lint typecheck unit broker-dep postgres-dep asyncapi-validate clean

# torch 2.13.0 first: that pin takes the CPU build lying on this machine's disk; a looser one downloads CUDA builds.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "torch==2.13.0"
	$(PY) -m pip install -q -e ".[device,export,dev,broker,postgres]"
	touch $(STAMP)

# Mosquitto is a system package: the tests start real brokers on loopback ports.
broker-dep:
	@command -v mosquitto >/dev/null 2>&1 || PATH="$$PATH:/usr/sbin" command -v mosquitto >/dev/null 2>&1 || \
		{ echo "installing mosquitto (Debian package)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null; }
	@command -v minisign >/dev/null 2>&1 || \
		{ echo "installing minisign (Debian package; tests verify bundle signatures with it)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq minisign >/dev/null; }

# PostgreSQL is a system package: the integrator-store tests start a real cluster on a unix socket.
postgres-dep:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		{ echo "installing postgresql (Debian package)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

# The AsyncAPI document through the AsyncAPI CLI (npm, pinned): .ci/run calls it where npm is installed.
ASYNCAPI_CLI ?= @asyncapi/cli@4.1.1
asyncapi-validate:
	npx --yes $(ASYNCAPI_CLI) validate edge/schemas/asyncapi.yaml --fail-severity warn

demo: $(STAMP) broker-dep
	$(PY) -m edge demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP) broker-dep postgres-dep
	PATH="$$PATH:/usr/sbin" $(VENV)/bin/python -m pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
