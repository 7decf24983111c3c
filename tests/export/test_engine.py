"""TensorRT engine building and running: the logic around TensorRT on any CPU, the real thing on a GPU."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from tensorrt_fakes import CALIBRATED, FP32, engine_bundle

from edge.backends import create
from edge.backends.tensorrt import (
    DeviceInfo,
    TensorRTBackend,
    TensorSpec,
    batch_chunks,
    built_for_mismatch,
    choose_precision,
    fast_precisions_of,
    run_batch,
)
from edge.bundle import load_bundle, write_manifest
from edge.errors import BackendUnavailableError, BundleError, InputError
from export.engine import check_dla, engine_file, plan_engine, profile_shapes, record_engine

ORIN = DeviceInfo("Orin", "8.7", "10.3.0", fast_fp16=True, fast_int8=True, dla_cores=2)
NANO = DeviceInfo("NVIDIA Tegra X1", "5.3", "8.2.1", fast_fp16=True, fast_int8=False)
XAVIER_TRT8 = DeviceInfo("Xavier", "7.2", "8.5.2.2", fast_fp16=True, fast_int8=True, dla_cores=2)


def test_fast_precisions_by_compute_capability() -> None:
    assert fast_precisions_of("5.3") == (True, False)  # Nano, TX1
    assert fast_precisions_of("6.2") == (True, False)  # TX2
    assert fast_precisions_of("7.2") == (True, True)  # Xavier
    assert fast_precisions_of("8.7") == (True, True)  # Orin


def test_int8_on_a_gpu_without_fast_int8_is_refused_and_auto_picks_fp16() -> None:
    with pytest.raises(InputError, match="platform_has_fast_int8") as caught:
        choose_precision("int8", NANO, ["int8", "fp16", "fp32"])
    assert "precision to fp16" in str(caught.value.fix) and "--precision" in str(caught.value.fix)
    assert choose_precision("auto", NANO, ["int8", "fp16", "fp32"]) == "fp16"
    assert choose_precision("auto", ORIN, ["int8", "fp16", "fp32"]) == "int8"
    assert choose_precision("auto", ORIN, ["fp16", "fp32"]) == "fp16"


def test_built_for_must_match_gpu_and_tensorrt() -> None:
    record = ORIN.record(dla_core=None, workspace_mb=1024)
    assert built_for_mismatch(record, ORIN) is None
    assert "TensorRT 10.3.0" in str(built_for_mismatch(record, DeviceInfo("Orin", "8.7", "10.4.0", True, True)))
    assert "compute capability 8.7" in str(
        built_for_mismatch(record, DeviceInfo("Xavier", "7.2", "10.3.0", True, True))
    )
    assert "DLA core 1" in str(
        built_for_mismatch({**record, "dla_core": 1}, DeviceInfo("Orin", "8.7", "10.3.0", True, True, dla_cores=1))
    )


def test_buffer_shapes_and_batch_chunks() -> None:
    clip = TensorSpec("clip", True, (-1, 3, 16, 112, 112), np.dtype(np.float32).str)
    assert clip.at_batch(4) == (4, 3, 16, 112, 112)
    assert clip.nbytes(2) == 2 * 3 * 16 * 112 * 112 * 4
    assert TensorSpec("score", False, (-1,), "<f4").at_batch(3) == (3,)
    with pytest.raises(BundleError, match="dynamic axes"):
        TensorSpec("x", True, (-1, -1, 8), "<f4").at_batch(1)
    assert batch_chunks(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert batch_chunks(0, 4) == []
    assert run_batch(3, 1) == 3 and run_batch(1, 4) == 4  # a fixed-batch (DLA) engine runs padded


def test_engine_plan_per_tensorrt_version(tmp_path: Path) -> None:
    bundle = engine_bundle(tmp_path / "b", CALIBRATED)
    qdq = plan_engine(bundle, "int8", ORIN)
    assert (qdq.onnx.path, qdq.table, qdq.int8_mode) == ("model.int8.trt.onnx", None, "qdq")
    table = plan_engine(bundle, "auto", XAVIER_TRT8)
    assert (table.precision, table.onnx.path, table.int8_mode) == ("int8", "model.onnx", "calibration-table")
    assert table.table is not None and table.table.path == "calib.trt.cache"
    assert plan_engine(bundle, "auto", NANO).precision == "fp16"
    plain = engine_bundle(tmp_path / "p", FP32)
    with pytest.raises(BundleError, match="no INT8 model"):
        plan_engine(plain, "int8", ORIN)
    assert profile_shapes((1, 3, 16, 112, 112), 4, dla=False) == (
        (1, 3, 16, 112, 112),
        (4, 3, 16, 112, 112),
        (4, 3, 16, 112, 112),
    )
    assert profile_shapes((1, 3, 16, 112, 112), 2, dla=True)[0][0] == 2
    assert engine_file("int8", 0) == "model.int8.dla0.engine"


def test_dla_core_must_exist_and_run_fp16_or_int8() -> None:
    check_dla(ORIN, 1, "int8")
    check_dla(NANO, None, "fp32")
    with pytest.raises(InputError, match="has 0 DLA cores"):
        check_dla(NANO, 0, "fp16")
    with pytest.raises(InputError, match="DLA runs FP16 and INT8 only") as caught:
        check_dla(ORIN, 0, "fp32")
    assert "--precision fp16" in str(caught.value.fix)


def test_engine_record_is_loadable_and_selected(tmp_path: Path) -> None:
    bundle = engine_bundle(tmp_path / "b", CALIBRATED)
    (bundle.root / "model.int8.engine").write_bytes(b"serialised engine")
    plan = plan_engine(bundle, "int8", ORIN)
    updated = record_engine(bundle, "model.int8.engine", plan, ORIN.record(dla_core=None, workspace_mb=512), 4)
    engine = load_bundle(updated.root).find("tensorrt-engine", precision="int8")
    assert engine is not None and engine.record["built_for"]["gpu_name"] == "Orin"
    assert engine.record["details"] == {"source": "model.int8.trt.onnx", "int8_mode": "qdq", "max_batch": 4}
    assert TensorRTBackend.runnable_precisions(updated) == ["int8"]


def test_backend_without_tensorrt_says_why(tmp_path: Path) -> None:
    available, reason = TensorRTBackend.probe()
    if available:
        pytest.skip("TensorRT and a GPU are present")
    assert "tensorrt" in reason or "CUDA" in reason
    with pytest.raises(BackendUnavailableError, match="cannot run here"):
        create("tensorrt", engine_bundle(tmp_path / "b", FP32))
    from edge.cli_support import run_cli

    assert run_cli("python -m export", "", "export.commands", ["engine", str(tmp_path / "b")]) == 5


@pytest.mark.gpu
def test_build_and_run_an_engine_on_the_gpu(tmp_path: Path) -> None:
    available, reason = TensorRTBackend.probe()
    if not available:
        pytest.skip(f"no TensorRT GPU here: {reason}")
    import onnxruntime as ort

    from export.engine import build_engine

    bundle = engine_bundle(tmp_path / "b", FP32)
    onnx.save(_tiny_ncthw_model(), str(bundle.root / "model.onnx"))
    bundle = write_manifest(bundle.root, bundle.manifest)
    built = build_engine(bundle, "fp32", max_batch=2)
    batch = np.random.default_rng(0).normal(size=(3, *built.input.shape[1:])).astype(np.float32)
    with create("tensorrt", built, precision="fp32") as backend:
        scores = backend.infer(batch)
        with ThreadPoolExecutor(max_workers=1) as worker:  # the daemon scores on its own thread
            threaded = worker.submit(backend.infer, batch).result()
    np.testing.assert_array_equal(threaded, scores)
    session = ort.InferenceSession(str(built.root / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"clip": batch})[0].reshape(3)
    np.testing.assert_allclose(scores, expected, rtol=1e-3, atol=1e-3)


def _tiny_ncthw_model() -> onnx.ModelProto:
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.full((1, 3, 1, 1, 1), 0.01, np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["clip", "w"], ["c"]),
        helper.make_node("GlobalAveragePool", ["c"], ["p"]),
        helper.make_node("Flatten", ["p"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["N", 3, 16, 112, 112])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        [weights],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
