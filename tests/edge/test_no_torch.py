"""``edge`` must import and run a model where torch cannot be imported (as on a Jetson without PyTorch)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROGRAM = r"""
import importlib, importlib.abc, json, pkgutil, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"torch is blocked in this test: {name}")
        return None

sys.meta_path.insert(0, NoTorch())
try:
    import torch  # noqa: F401
    raise SystemExit("the torch blocker does not work")
except ImportError:
    pass

import edge
failed = {}
for info in pkgutil.walk_packages(edge.__path__, "edge."):
    if info.name.endswith("__main__"):  # runs the CLI when imported
        continue
    try:
        importlib.import_module(info.name)
    except Exception as exc:  # report every module that cannot import without torch
        failed[info.name] = f"{type(exc).__name__}: {exc}"

import numpy as np
from edge.backends import create
from edge.bundle import load_bundle
from edge.preprocess import batch_windows

bundle = load_bundle(sys.argv[1])
spec = bundle.input
window = np.random.default_rng(0).integers(0, 256, (spec.frames, spec.height, spec.width, 3), dtype=np.uint8)
with create("auto", bundle) as backend:
    scores = backend.infer(batch_windows([window, window], spec))
    backend_name = backend.describe()["backend"]
print(json.dumps({
    "failed": failed,
    "torch_loaded": any(m.split(".")[0] == "torch" for m in sys.modules),
    "scores": scores.tolist(),
    "backend": backend_name,
}))
"""


def test_edge_imports_and_infers_without_torch(exported_bundle_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(exported_bundle_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}, result["failed"]
    assert result["torch_loaded"] is False
    assert result["backend"] == "onnxruntime"
    first, second = result["scores"]
    assert first == second and 0 <= first <= 63
