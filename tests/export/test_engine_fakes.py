"""``build_engine`` on fake ``tensorrt`` and ``pycuda`` modules: what the builder is told per precision, DLA and
TensorRT version, and what the manifest records (any CPU)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from tensorrt_fakes import CALIBRATED, FP32, Build, BuilderFlag, DeviceType, FakeGpu, MemoryPoolType, engine_bundle

from calibration.trt_table import table_from_amax, write_table
from edge.backends import create
from edge.bundle import Bundle, load_bundle
from edge.errors import InputError
from export.engine import build_engine

WINDOW = (3, 16, 112, 112)  # the default NCTHW window of engine_bundle


def _calibrated(root: Path) -> Bundle:
    root.mkdir(parents=True)
    write_table(root / "calib.trt.cache", table_from_amax({"clip": 127.0, "conv_out": 2.54}, version="8601"))
    return engine_bundle(root, CALIBRATED)


def _only_build(gpu: FakeGpu) -> Build:
    (build,) = gpu.builds
    return build


def test_fp32_on_tensorrt_10_sets_workspace_and_a_dynamic_batch_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = FakeGpu(tensorrt_version="10.3.0").install(monkeypatch)
    built = build_engine(engine_bundle(tmp_path / "b", FP32), "fp32", workspace_mb=256, max_batch=3)
    build = _only_build(gpu)
    assert build.network.creation_flags == 0  # explicit batch is the only mode in TensorRT 10
    assert build.network.parsed == b"model.onnx"
    assert build.config.pool_limits == {MemoryPoolType.WORKSPACE: 256 << 20}
    assert build.config.flags == set()
    assert [p.shapes for p in build.config.profiles] == [{"clip": ((1, *WINDOW), (3, *WINDOW), (3, *WINDOW))}]
    assert (build.config.default_device_type, build.config.int8_calibrator) == (DeviceType.GPU, None)
    assert (built.root / "model.fp32.engine").read_bytes() == b"serialised engine from model.onnx"
    engine = load_bundle(built.root).find("tensorrt-engine", precision="fp32")
    assert engine is not None
    assert engine.record["built_for"] == {
        "tensorrt_version": "10.3.0",
        "gpu_name": "Orin",
        "compute_capability": "8.7",
        "dla_core": None,
        "workspace_mb": 256,
    }
    assert engine.record["details"] == {"source": "model.onnx", "int8_mode": None, "max_batch": 3}


@pytest.mark.parametrize("fast_fp16", [True, False])
def test_fp16_always_sets_the_fp16_flag_and_warns_without_fast_fp16(
    fast_fp16: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gpu = FakeGpu(name="GeForce GTX 1080", capability=(6, 1), fast_fp16=fast_fp16, dla_cores=0).install(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="export.engine"):
        built = build_engine(engine_bundle(tmp_path / "b", FP32), "fp16")
    assert _only_build(gpu).config.flags == {BuilderFlag.FP16}
    assert built.find("tensorrt-engine", precision="fp16") is not None
    warned = [r.getMessage() for r in caplog.records if "no fast FP16" in r.getMessage()]
    assert len(warned) == (0 if fast_fp16 else 1)
    if warned:
        assert "GeForce GTX 1080 (compute capability 6.1)" in warned[0]


def test_int8_on_tensorrt_10_parses_the_qdq_model_without_a_calibrator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = FakeGpu(tensorrt_version="10.3.0").install(monkeypatch)
    built = build_engine(_calibrated(tmp_path / "b"), "int8")
    build = _only_build(gpu)
    assert build.network.parsed == b"model.int8.trt.onnx"
    assert build.config.flags == {BuilderFlag.INT8, BuilderFlag.FP16}
    assert (build.config.int8_calibrator, build.config.calibration_profile, build.calibration_cache) == (None,) * 3
    engine = built.find("tensorrt-engine", precision="int8")
    assert engine is not None and engine.record["details"]["int8_mode"] == "qdq"


def test_int8_on_tensorrt_8_feeds_the_table_retargeted_to_this_tensorrt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = FakeGpu(tensorrt_version="8.5.2.2", name="Xavier", capability=(7, 2)).install(monkeypatch)
    built = build_engine(_calibrated(tmp_path / "b"), "int8")
    build = _only_build(gpu)
    assert build.network.creation_flags == 1  # 1 << EXPLICIT_BATCH, required on 8.x
    assert build.network.parsed == b"model.onnx"
    assert build.config.flags == {BuilderFlag.INT8, BuilderFlag.FP16}
    assert build.config.calibration_profile is build.config.profiles[0]
    assert build.calibration_cache is not None
    assert build.calibration_cache.decode().splitlines() == [
        "TRT-8502-EntropyCalibration2",  # the table was written for 8601; TensorRT ignores a foreign header
        "clip: 3f800000",
        "conv_out: 3ca3d70a",
    ]
    engine = built.find("tensorrt-engine", precision="int8")
    assert engine is not None and engine.record["details"]["int8_mode"] == "calibration-table"


def test_dla_builds_a_fixed_batch_with_gpu_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu().install(monkeypatch)
    built = build_engine(engine_bundle(tmp_path / "b", FP32), "fp16", dla_core=1, max_batch=2)
    config = _only_build(gpu).config
    assert (config.default_device_type, config.DLA_core) == (DeviceType.DLA, 1)
    assert config.flags == {BuilderFlag.FP16, BuilderFlag.GPU_FALLBACK}
    assert config.profiles[0].shapes["clip"] == ((2, *WINDOW),) * 3
    engine = built.find("tensorrt-engine", precision="fp16")
    assert engine is not None and engine.path == "model.fp16.dla1.engine"
    assert engine.record["built_for"]["dla_core"] == 1


def test_int8_without_fast_int8_is_refused_before_building(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu(tensorrt_version="8.5.2.2", name="Tesla P100", capability=(6, 0), fast_int8=False, dla_cores=0)
    gpu.install(monkeypatch)
    with pytest.raises(InputError, match="platform_has_fast_int8") as caught:
        build_engine(_calibrated(tmp_path / "b"), "int8")
    assert "precision to fp16" in str(caught.value.fix) and "--precision" in str(caught.value.fix)
    assert gpu.builds == []


def test_a_built_engine_loads_and_runs_on_the_gpu_it_was_built_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = FakeGpu().install(monkeypatch)
    built = build_engine(engine_bundle(tmp_path / "b", FP32), "fp16", max_batch=2)
    gpu.add_engine(b"serialised engine from model.onnx", (-1, *WINDOW), max_batch=2)
    windows = np.stack([np.full(WINDOW, value, np.float32) for value in (0.5, 1.0, 2.0)])
    with create("tensorrt", built, precision="auto") as backend:
        np.testing.assert_allclose(backend.infer(windows), [0.5, 1.0, 2.0])
        assert backend.describe()["max_batch"] == 2
