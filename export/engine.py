"""Build a TensorRT engine from a bundle's ONNX model on the target device, and record what it was built for.

Precision paths: FP32/FP16 from the FP32 ONNX model; INT8 from the Q/DQ model made for TensorRT
(``model.int8.trt.onnx``, explicit quantization) on TensorRT >= 10, and on TensorRT 8.5/8.6 from the FP32 model
plus the calibration table (``calib.trt.cache``) read by an ``IInt8EntropyCalibrator2`` (implicit quantization,
deprecated since 10.1 and removed in 11). The batch axis gets an optimization profile from 1 to ``max_batch``;
DLA cores (Xavier, Orin) take a fixed batch with GPU fallback for layers DLA cannot run.

Supported: TensorRT 8.5 to 10.x (JetPack 5.1+ and 6, see :mod:`edge.backends.tensorrt`); Jetson Nano, TX1 and TX2
(JetPack 4.x, TensorRT 8.2, Python 3.6) cannot run this package.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.backends.tensorrt import DeviceInfo, TensorRTBackend, choose_precision, query_device
from edge.bundle import Artifact, Bundle, write_manifest
from edge.errors import BackendUnavailableError, BundleError, InputError

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_MB = 1024
DEFAULT_MAX_BATCH = 4


@dataclass(frozen=True)
class EnginePlan:
    """What to build from: the ONNX model, the calibration table (8.x INT8 only) and the INT8 mode."""

    precision: str
    onnx: Artifact
    table: Artifact | None
    int8_mode: str | None  # "qdq", "calibration-table" or None

    def details(self, max_batch: int) -> dict[str, Any]:
        """The engine artifact's ``details``."""
        return {"source": self.onnx.path, "int8_mode": self.int8_mode, "max_batch": max_batch}


def tensorrt_major(version: str) -> int:
    """Major version of a TensorRT version string."""
    return int(version.split(".")[0])


def offered_precisions(bundle: Bundle, tensorrt_version: str) -> list[str]:
    """Precisions this bundle can be built in with this TensorRT."""
    offered = ["fp32", "fp16"] if bundle.find("onnx", precision="fp32") is not None else []
    if tensorrt_major(tensorrt_version) >= 10:
        has_int8 = bundle.find("onnx", precision="int8", target="tensorrt") is not None
    else:
        has_int8 = bool(offered) and bundle.find("trt-calibration-table") is not None
    return (["int8"] if has_int8 else []) + offered


def plan_engine(bundle: Bundle, requested: str, device: DeviceInfo) -> EnginePlan:
    """Pick the precision (refusing INT8 where the GPU has no fast INT8) and the files to build from."""
    offered = offered_precisions(bundle, device.tensorrt_version)
    if requested == "int8" and device.fast_int8 and "int8" not in offered:
        raise BundleError(
            f"bundle {bundle.root} has no INT8 model for TensorRT {device.tensorrt_version}",
            fix=f"calibrate it first: python -m export calibrate {bundle.root} --calib SET",
        )
    precision = choose_precision(requested, device, offered)
    fp32 = bundle.find("onnx", precision="fp32")
    if precision != "int8":
        if fp32 is None:
            raise BundleError(f"bundle {bundle.root} has no FP32 ONNX model", fix="python -m export onnx")
        return EnginePlan(precision, fp32, None, None)
    if tensorrt_major(device.tensorrt_version) >= 10:
        qdq = bundle.find("onnx", precision="int8", target="tensorrt")
        assert qdq is not None  # offered_precisions checked it
        return EnginePlan(precision, qdq, None, "qdq")
    assert fp32 is not None
    return EnginePlan(precision, fp32, bundle.find("trt-calibration-table"), "calibration-table")


def profile_shapes(
    input_shape: tuple[int, ...], max_batch: int, *, dla: bool
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """``(min, opt, max)`` shapes of the input for the optimization profile (fixed on DLA)."""
    if max_batch < 1:
        raise InputError(f"--max-batch {max_batch} must be at least 1", fix="pass e.g. 4")
    rest = tuple(input_shape[1:])
    low = max_batch if dla else 1
    return (low, *rest), (max_batch, *rest), (max_batch, *rest)


def engine_file(precision: str, dla_core: int | None) -> str:
    """The engine's file name in the bundle."""
    return f"model.{precision}{'' if dla_core is None else f'.dla{dla_core}'}.engine"


def check_dla(device: DeviceInfo, dla_core: int | None, precision: str) -> None:
    """Refuse a DLA core this device does not have, and FP32 on DLA (DLA runs FP16 and INT8 only)."""
    if dla_core is not None and not 0 <= dla_core < device.dla_cores:
        raise InputError(
            f"--dla-core {dla_core}: {device.gpu_name} has {device.dla_cores} DLA cores",
            fix="leave out --dla-core (DLA exists on Xavier and Orin only)",
        )
    if dla_core is not None and precision == "fp32":
        raise InputError(
            f"--dla-core {dla_core} with fp32: DLA runs FP16 and INT8 only, every layer would fall back to the GPU",
            fix="use --precision fp16 or int8 with --dla-core, or leave out --dla-core",
        )


def record_engine(bundle: Bundle, path: str, plan: EnginePlan, built_for: dict[str, Any], max_batch: int) -> Bundle:
    """Add (or replace) the engine artifact in the manifest."""
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["path"] != path] + [
        {
            "path": path,
            "kind": "tensorrt-engine",
            "precision": plan.precision,
            "target": "tensorrt",
            "built_for": built_for,
            "details": plan.details(max_batch),
        }
    ]
    return write_manifest(bundle.root, manifest)


def _table_calibrator(trt: Any, cache: bytes) -> Any:
    """An entropy calibrator that hands TensorRT the bundle's table and never asks for data."""

    class TableCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> None:
            return None

        def read_calibration_cache(self) -> bytes:
            return cache

        def write_calibration_cache(self, data: Any) -> None:
            return None

    return TableCalibrator()


def _table_for(trt: Any, bundle: Bundle, plan: EnginePlan) -> bytes:
    from calibration.trt_table import read_table, version_code

    assert plan.table is not None
    table = read_table(bundle.path_of(plan.table))
    return table.retarget(version=version_code(trt.__version__), algorithm="EntropyCalibration2").to_text().encode()


def build_engine(
    bundle: Bundle,
    precision: str = "auto",
    *,
    dla_core: int | None = None,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> Bundle:
    """Build, serialise into the bundle and record the engine; returns the updated bundle."""
    available, reason = TensorRTBackend.probe()
    if not available:
        raise BackendUnavailableError(
            f"cannot build a TensorRT engine here: {reason}",
            fix="build on the target device (JetPack ships TensorRT; pip install pycuda)",
        )
    import tensorrt as trt

    device = query_device(trt)
    plan = plan_engine(bundle, precision, device)
    check_dla(device, dla_core, plan.precision)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if tensorrt_major(trt.__version__) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(bundle.path_of(plan.onnx).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BundleError(f"TensorRT cannot parse {plan.onnx.path}: {errors}", fix="re-export with a supported opset")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if plan.precision == "fp16" and not device.fast_fp16:
        log.warning(
            "%s (compute capability %s) has no fast FP16 (platform_has_fast_fp16 is false): TensorRT may keep "
            "layers in FP32 and the engine may run no faster than --precision fp32",
            device.gpu_name,
            device.compute_capability,
        )
    if plan.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # TensorRT picks per layer; INT8 builds may fall back to FP16
    if plan.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    clip = network.get_input(0)
    low, opt, high = profile_shapes(tuple(bundle.input.shape), max_batch, dla=dla_core is not None)
    profile.set_shape(clip.name, low, opt, high)
    config.add_optimization_profile(profile)
    calibrator = None
    if plan.int8_mode == "calibration-table":
        calibrator = _table_calibrator(trt, _table_for(trt, bundle, plan))
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    log.info("building %s engine from %s (%s)", plan.precision, plan.onnx.path, plan.int8_mode or "no int8")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BundleError(f"TensorRT failed to build the {plan.precision} engine", fix="see TensorRT's log above")
    name = engine_file(plan.precision, dla_core)
    Path(bundle.root / name).write_bytes(bytes(serialized))
    del calibrator
    return record_engine(bundle, name, plan, device.record(dla_core=dla_core, workspace_mb=workspace_mb), max_batch)
