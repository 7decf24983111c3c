"""The ONNX Runtime backend on a real exported bundle: a real session, shapes, precision choice."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.backends import create, runnable
from edge.backends.onnxruntime import OnnxRuntimeBackend
from edge.bundle import load_bundle, write_manifest
from edge.errors import BackendUnavailableError, InputError, UsageError
from edge.preprocess import batch_windows


def _windows(count: int, seed: int, shape: tuple[int, int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    frames, height, width = shape
    return [rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8) for _ in range(count)]


def test_scores_batches_of_windows_in_range(exported_bundle_dir: Path) -> None:
    bundle = load_bundle(exported_bundle_dir)
    spec = bundle.input
    windows = _windows(3, 0, (spec.frames, spec.height, spec.width))
    with create("onnxruntime", bundle, threads=1) as backend:
        backend.warm_up()
        scores = backend.infer(batch_windows(windows, spec))
        singles = np.concatenate([backend.infer(batch_windows([w], spec)) for w in windows])
        described = backend.describe()
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 63))
    np.testing.assert_allclose(scores, singles, rtol=1e-5, atol=1e-4)
    assert described["backend"] == "onnxruntime" and described["precision"] == "fp32"
    assert described["providers"][-1] == "CPUExecutionProvider" and described["threads"] == 1
    assert described["model_file"] == "model.fp32.onnx"


def test_wrong_shapes_and_closed_backends_are_refused(exported_bundle_dir: Path) -> None:
    bundle = load_bundle(exported_bundle_dir)
    backend = create("onnxruntime", bundle)
    with pytest.raises(InputError, match=r"wants \(N, 4, 3, 32, 32\)"):
        backend.infer(np.zeros((1, 3, 4, 32, 32), np.float32))  # NCTHW into an NTCHW model
    with pytest.raises(InputError):
        backend.infer(np.zeros((4, 3, 32, 32), np.float32))
    backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        backend.infer(np.zeros((1, 4, 3, 32, 32), np.float32))


def test_precision_choice(exported_bundle: Path) -> None:
    bundle = load_bundle(exported_bundle)
    assert OnnxRuntimeBackend.runnable_precisions(bundle) == ["fp32"]
    with pytest.raises(InputError, match=r"cannot run precision 'int8'.*it offers fp32"):
        create("onnxruntime", bundle, precision="int8")
    manifest = dict(bundle.manifest)
    shutil.copy(exported_bundle / "model.fp32.onnx", exported_bundle / "model.int8.onnx")
    record = {"path": "model.int8.onnx", "kind": "onnx", "precision": "int8", "target": "onnxruntime-cpu"}
    manifest["artifacts"] = [*manifest["artifacts"], record]
    with_int8 = write_manifest(exported_bundle, manifest)
    assert OnnxRuntimeBackend.runnable_precisions(with_int8) == ["int8", "fp32"]
    assert create("auto", with_int8).describe()["model_file"] == "model.int8.onnx"
    assert create("onnxruntime", with_int8, precision="fp32").describe()["model_file"] == "model.fp32.onnx"


def test_backend_registry_names_its_choices(exported_bundle_dir: Path) -> None:
    assert runnable(load_bundle(exported_bundle_dir))["onnxruntime"] == (["fp32"], "")
    with pytest.raises(UsageError, match="choose one of: auto, onnxruntime"):
        create("tpu", load_bundle(exported_bundle_dir))


def test_runnable_says_why_a_backend_cannot_run_a_bundle(
    exported_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = load_bundle(exported_bundle_dir)
    monkeypatch.setattr(OnnxRuntimeBackend, "runnable_precisions", classmethod(lambda cls, bundle: []))
    assert runnable(bundle)["onnxruntime"] == ([], "no model in this bundle for it")
    monkeypatch.setattr(OnnxRuntimeBackend, "_probe", classmethod(lambda cls: (False, "no onnxruntime wheel")))
    assert runnable(bundle)["onnxruntime"] == ([], "no onnxruntime wheel")
    with pytest.raises(BackendUnavailableError, match="onnxruntime: no onnxruntime wheel"):
        create("auto", bundle)


def test_the_uint8_int8_model_stays_on_the_cpu_provider_and_fp32_prefers_a_gpu() -> None:
    from edge.backends.onnxruntime import providers_for

    offered = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("int8", offered) == ["CPUExecutionProvider"]
    assert providers_for("fp32", offered) == offered
    assert providers_for("fp32", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_a_model_of_two_output_columns_scores_both_and_a_width_the_manifest_does_not_name_is_refused(
    tmp_path: Path,
) -> None:
    from daemon_media import BDI_AND_PHQ9, PHQ9_PER_BDI, tiny_bundle

    from edge.errors import BundleError

    bundle = tiny_bundle(tmp_path / "two", frames=4, size=16, two_outputs=True)
    batch = batch_windows(_windows(3, 1, (4, 16, 16)), bundle.input)
    with create("onnxruntime", bundle) as backend:
        scores = backend.infer_outputs(batch)
        assert scores.shape == (3, 2)
        np.testing.assert_allclose(scores[:, 1], PHQ9_PER_BDI * scores[:, 0], rtol=1e-5)
        np.testing.assert_allclose(backend.infer(batch), scores[:, 0])  # the primary output
    single = tiny_bundle(tmp_path / "one", frames=4, size=16)
    manifest = {**single.manifest, "outputs": list(BDI_AND_PHQ9)}
    del manifest["output"]
    with (
        create("onnxruntime", write_manifest(single.root, manifest)) as backend,
        pytest.raises(BundleError, match=r"returned shape \(3,\) for 3 windows; its manifest names 2 output"),
    ):
        backend.infer(batch)
