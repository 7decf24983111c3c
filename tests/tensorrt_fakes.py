"""Fake ``tensorrt`` and ``pycuda.driver`` modules, so the TensorRT backend and engine builder run on any CPU.

The fakes follow the documented Python APIs (TensorRT 8.5+/10 named tensors: ``num_io_tensors``,
``get_tensor_name``/``_mode``/``_shape``/``_dtype``/``_profile_shape``, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``; pycuda: ``pagelocked_empty``, ``mem_alloc``, ``memcpy_htod_async``/``dtoh_async``,
``Stream``, primary-context ``push``/``pop``), record every call in :attr:`FakeGpu.calls`, and behave like a GPU
where the code under test could go wrong:

- CUDA work needs a current context, kept per thread as CUDA does;
- async copies and execution are queued on their stream and run only at ``synchronize()``;
- device memory is bytes behind integer addresses, so an engine reads whatever buffer was bound by address;
- the engine's "inference" writes each window's mean to its output row, so a test can tell which window reached
  which row.
"""

from __future__ import annotations

import enum
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.bundle import Bundle, write_manifest
from edge.layout import default_input_section, default_regions_section

Call = tuple[Any, ...]


class CudaError(Exception):
    """``pycuda.driver.Error``."""


class HostAllocation(bytearray):
    """The ``.base`` of a ``pagelocked_empty`` array."""

    def __init__(self, gpu: FakeGpu, nbytes: int) -> None:
        super().__init__(nbytes)
        self.gpu = gpu
        self.freed = False

    def free(self) -> None:
        self.gpu.need_context("HostAllocation.free")
        self.freed = True


def is_pagelocked(array: np.ndarray) -> bool:
    """Whether ``array`` views memory from ``pagelocked_empty``."""
    base: Any = array
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, HostAllocation) and not base.freed


class DeviceAllocation:
    """``pycuda.driver.DeviceAllocation``: ``int()`` is its device address."""

    def __init__(self, gpu: FakeGpu, nbytes: int) -> None:
        self.gpu, self.data, self.freed = gpu, np.zeros(nbytes, np.uint8), False
        self.address = 0x10000 + 0x100000 * len(gpu.device_memory)
        gpu.device_memory[self.address] = self

    def __int__(self) -> int:
        return self.address

    def free(self) -> None:
        self.gpu.need_context("DeviceAllocation.free")
        self.freed = True


class Stream:
    """``pycuda.driver.Stream``: queued work runs at ``synchronize()``."""

    def __init__(self, gpu: FakeGpu) -> None:
        gpu.need_context("Stream")
        self.gpu = gpu
        self.queue: list[Callable[[], None]] = []
        self.handle = 0xA000 + len(gpu.streams)
        gpu.streams[self.handle] = self

    def enqueue(self, work: Callable[[], None]) -> None:
        self.queue.append(work)

    def synchronize(self) -> None:
        self.gpu.need_context("Stream.synchronize")
        self.gpu.calls.append(("synchronize", self.handle))
        while self.queue:
            self.queue.pop(0)()


class IOMode(enum.Enum):
    INPUT = "input"
    OUTPUT = "output"


class DataType(enum.Enum):
    FLOAT = np.float32
    HALF = np.float16


@dataclass
class FakeEngine:
    """An engine with one input ``clip`` and one output ``score`` of ``outputs`` values per window (column k: the
    window's mean plus k)."""

    gpu: FakeGpu
    input_shape: tuple[int, ...]  # -1 for a dynamic batch
    profile: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    names: tuple[str, str] = ("clip", "score")
    outputs: int = 1

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> IOMode:
        return IOMode.INPUT if name == self.names[0] else IOMode.OUTPUT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.input_shape if name == self.names[0] else (self.input_shape[0], self.outputs)

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType.FLOAT

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        assert (name, profile_index) == (self.names[0], 0), "only the input of profile 0 has a profile shape"
        return list(self.profile)

    def create_execution_context(self) -> ExecutionContext:
        return ExecutionContext(self)


class ExecutionContext:
    """``IExecutionContext``: runs the engine on the buffers bound by address."""

    def __init__(self, engine: FakeEngine) -> None:
        self.engine, self.gpu = engine, engine.gpu
        self.addresses: dict[str, int] = {}
        self.input_shape: tuple[int, ...] | None = None

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.gpu.calls.append(("set_input_shape", name, tuple(shape)))
        low, _, high = self.engine.profile
        if not all(lo <= dim <= hi for lo, dim, hi in zip(low, shape, high, strict=True)):
            return False  # TensorRT logs an error and refuses a shape outside the profile
        self.input_shape = tuple(shape)
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.gpu.calls.append(("set_tensor_address", name, address))
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        self.gpu.need_context("execute_async_v3")
        self.gpu.calls.append(("execute_async_v3", stream_handle))
        if self.input_shape is None or set(self.addresses) != set(self.engine.names):
            return False  # an unset input shape or address fails the enqueue
        clip_name, score_name = self.engine.names
        source = self.gpu.device_memory[self.addresses[clip_name]]
        target = self.gpu.device_memory[self.addresses[score_name]]
        shape = self.input_shape

        def run() -> None:
            count = int(np.prod(shape))
            clip = source.data[: count * 4].view(np.float32).reshape(shape)
            means = clip.reshape(shape[0], -1).mean(axis=1)
            scores = (means[:, None] + np.arange(self.engine.outputs)).astype(np.float32)
            target.data[: scores.nbytes] = scores.reshape(-1).view(np.uint8)

        self.gpu.streams[stream_handle].enqueue(run)
        return True


class Runtime:
    """``tensorrt.Runtime``: deserialises the engine the test put under ``FakeGpu.engines``."""

    def __init__(self, gpu: FakeGpu, logger: Any) -> None:
        self.gpu = gpu
        self.DLA_core = -1

    def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
        self.gpu.need_context("deserialize_cuda_engine")
        self.gpu.calls.append(("deserialize_cuda_engine", bytes(data), self.DLA_core))
        return self.gpu.engines.get(bytes(data))


class BuilderFlag(enum.Enum):
    FP16 = "FP16"
    INT8 = "INT8"
    GPU_FALLBACK = "GPU_FALLBACK"


class DeviceType(enum.Enum):
    GPU = "GPU"
    DLA = "DLA"


class MemoryPoolType(enum.Enum):
    WORKSPACE = "WORKSPACE"


class NetworkDefinitionCreationFlag(enum.IntEnum):
    EXPLICIT_BATCH = 0


@dataclass
class OptimizationProfile:
    shapes: dict[str, tuple[tuple[int, ...], ...]] = field(default_factory=dict)

    def set_shape(self, name: str, low: tuple[int, ...], opt: tuple[int, ...], high: tuple[int, ...]) -> None:
        self.shapes[name] = (tuple(low), tuple(opt), tuple(high))


@dataclass
class BuilderConfig:
    """``IBuilderConfig``: keeps what the builder was told."""

    flags: set[BuilderFlag] = field(default_factory=set)
    pool_limits: dict[MemoryPoolType, int] = field(default_factory=dict)
    profiles: list[OptimizationProfile] = field(default_factory=list)
    calibration_profile: OptimizationProfile | None = None
    int8_calibrator: Any = None
    default_device_type: DeviceType = DeviceType.GPU
    DLA_core: int = -1

    def set_memory_pool_limit(self, pool: MemoryPoolType, size: int) -> None:
        self.pool_limits[pool] = size

    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags.add(flag)

    def add_optimization_profile(self, profile: OptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile: OptimizationProfile) -> bool:
        self.calibration_profile = profile
        return True


@dataclass
class Network:
    creation_flags: int
    parsed: bytes = b""

    def get_input(self, index: int) -> types.SimpleNamespace:
        assert index == 0 and self.parsed, "the network has an input once the ONNX model is parsed"
        return types.SimpleNamespace(name="clip")


@dataclass
class Build:
    """What one ``build_serialized_network`` call got, with the calibration cache its calibrator handed over."""

    network: Network
    config: BuilderConfig
    calibration_cache: bytes | None


class FakeGpu:
    """One fake GPU with its TensorRT: the state shared by the two fake modules."""

    def __init__(
        self,
        *,
        tensorrt_version: str = "10.3.0",
        name: str = "Orin",
        capability: tuple[int, int] = (8, 7),
        fast_fp16: bool = True,
        fast_int8: bool = True,
        dla_cores: int = 2,
    ) -> None:
        self.tensorrt_version, self.name, self.capability = tensorrt_version, name, capability
        self.fast_fp16, self.fast_int8, self.dla_cores = fast_fp16, fast_int8, dla_cores
        self.calls: list[Call] = []
        self.device_memory: dict[int, DeviceAllocation] = {}
        self.host_allocations: list[HostAllocation] = []
        self.streams: dict[int, Stream] = {}
        self.engines: dict[bytes, FakeEngine] = {}
        self.builds: list[Build] = []
        self._local = threading.local()

    @property
    def context_stack(self) -> list[str]:
        """This thread's CUDA context stack."""
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        stack: list[str] = self._local.stack
        return stack

    def need_context(self, what: str) -> None:
        if not self.context_stack:
            raise CudaError(f"{what}: no current CUDA context on this thread")

    def add_engine(
        self, data: bytes, input_shape: tuple[int, ...], *, max_batch: int = 4, min_batch: int = 1, outputs: int = 1
    ) -> FakeEngine:
        """Make ``data`` deserialise to an engine with profile batch ``min_batch``..``max_batch`` and ``outputs``
        output columns."""
        rest = input_shape[1:]
        profile = ((min_batch, *rest), (max_batch, *rest), (max_batch, *rest))
        engine = FakeEngine(self, input_shape, profile, outputs=outputs)
        self.engines[data] = engine
        return engine

    def pycuda_driver(self) -> types.ModuleType:
        """The fake ``pycuda.driver`` module."""
        gpu = self
        driver = types.ModuleType("pycuda.driver")

        class Context:
            def push(self) -> None:
                gpu.calls.append(("push",))
                gpu.context_stack.append("primary")

            @staticmethod
            def pop() -> None:  # pycuda pops the current context, whichever it is
                gpu.calls.append(("pop",))
                if not gpu.context_stack:
                    raise CudaError("context stack is empty")
                gpu.context_stack.pop()

            def detach(self) -> None:
                gpu.calls.append(("detach",))

        class Device:
            def __init__(self, index: int) -> None:
                self.index = index

            @staticmethod
            def count() -> int:
                return 1

            def name(self) -> str:
                return gpu.name

            def compute_capability(self) -> tuple[int, int]:
                return gpu.capability

            def retain_primary_context(self) -> Context:
                gpu.calls.append(("retain_primary_context", self.index))
                return Context()

        def pagelocked_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            gpu.need_context("pagelocked_empty")
            allocation = HostAllocation(gpu, int(np.prod(shape)) * np.dtype(dtype).itemsize)
            gpu.host_allocations.append(allocation)
            return np.ndarray(shape, dtype, buffer=allocation)

        def mem_alloc(nbytes: int) -> DeviceAllocation:
            gpu.need_context("mem_alloc")
            return DeviceAllocation(gpu, nbytes)

        def memcpy_htod_async(dest: DeviceAllocation, src: np.ndarray, stream: Stream) -> None:
            gpu.need_context("memcpy_htod_async")
            gpu.calls.append(("htod", int(dest), src.nbytes, is_pagelocked(src), stream.handle))
            assert src.flags.c_contiguous and src.nbytes <= dest.data.nbytes

            def copy() -> None:  # reads the host buffer when the stream runs, as a DMA engine would
                dest.data[: src.nbytes] = np.frombuffer(src.tobytes(), np.uint8)

            stream.enqueue(copy)

        def memcpy_dtoh_async(dest: np.ndarray, src: DeviceAllocation, stream: Stream) -> None:
            gpu.need_context("memcpy_dtoh_async")
            gpu.calls.append(("dtoh", int(src), dest.nbytes, is_pagelocked(dest), stream.handle))
            assert dest.flags.c_contiguous and dest.nbytes <= src.data.nbytes

            def copy() -> None:
                dest.reshape(-1).view(np.uint8)[:] = src.data[: dest.nbytes]

            stream.enqueue(copy)

        driver.Error = CudaError  # type: ignore[attr-defined]
        driver.init = lambda: None  # type: ignore[attr-defined]
        driver.Device = Device  # type: ignore[attr-defined]
        driver.Context = Context  # type: ignore[attr-defined]
        driver.Stream = lambda: Stream(gpu)  # type: ignore[attr-defined]
        driver.pagelocked_empty = pagelocked_empty  # type: ignore[attr-defined]
        driver.mem_alloc = mem_alloc  # type: ignore[attr-defined]
        driver.memcpy_htod_async = memcpy_htod_async  # type: ignore[attr-defined]
        driver.memcpy_dtoh_async = memcpy_dtoh_async  # type: ignore[attr-defined]
        return driver

    def tensorrt(self) -> types.ModuleType:
        """The fake ``tensorrt`` module."""
        gpu = self
        trt = types.ModuleType("tensorrt")

        class Logger:
            ERROR, WARNING, INFO = 1, 2, 3

            def __init__(self, severity: int) -> None:
                pass

        class IInt8EntropyCalibrator2:
            def __init__(self) -> None:
                gpu.calls.append(("IInt8EntropyCalibrator2.__init__",))

        class OnnxParser:
            def __init__(self, network: Network, logger: Logger) -> None:
                self.network = network

            def parse(self, data: bytes) -> bool:
                self.network.parsed = bytes(data)
                return True

        class Builder:
            def __init__(self, logger: Logger) -> None:
                self.platform_has_fast_fp16 = gpu.fast_fp16
                self.platform_has_fast_int8 = gpu.fast_int8
                self.num_DLA_cores = gpu.dla_cores

            def create_network(self, flags: int) -> Network:
                return Network(flags)

            def create_builder_config(self) -> BuilderConfig:
                return BuilderConfig()

            def create_optimization_profile(self) -> OptimizationProfile:
                return OptimizationProfile()

            def build_serialized_network(self, network: Network, config: BuilderConfig) -> bytes:
                calibrator = config.int8_calibrator
                cache = None if calibrator is None else calibrator.read_calibration_cache()
                gpu.builds.append(Build(network, config, cache))
                return b"serialised engine from " + network.parsed

        trt.__version__ = self.tensorrt_version  # type: ignore[attr-defined]
        trt.Logger = Logger  # type: ignore[attr-defined]
        trt.Builder = Builder  # type: ignore[attr-defined]
        trt.OnnxParser = OnnxParser  # type: ignore[attr-defined]
        trt.IInt8EntropyCalibrator2 = IInt8EntropyCalibrator2  # type: ignore[attr-defined]
        trt.Runtime = lambda logger: Runtime(gpu, logger)  # type: ignore[attr-defined]
        trt.TensorIOMode = IOMode  # type: ignore[attr-defined]
        trt.DataType = DataType  # type: ignore[attr-defined]
        trt.nptype = lambda dtype: dtype.value  # type: ignore[attr-defined]
        trt.BuilderFlag = BuilderFlag  # type: ignore[attr-defined]
        trt.DeviceType = DeviceType  # type: ignore[attr-defined]
        trt.MemoryPoolType = MemoryPoolType  # type: ignore[attr-defined]
        trt.NetworkDefinitionCreationFlag = NetworkDefinitionCreationFlag  # type: ignore[attr-defined]
        return trt

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeGpu:
        """Put the fake ``tensorrt``, ``pycuda`` and ``pycuda.driver`` into ``sys.modules`` for one test."""
        driver = self.pycuda_driver()
        package = types.ModuleType("pycuda")
        package.driver = driver  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "pycuda", package)
        monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
        monkeypatch.setitem(sys.modules, "tensorrt", self.tensorrt())
        return self

    def calls_named(self, name: str) -> list[Call]:
        """The recorded calls of one kind, in order."""
        return [call for call in self.calls if call[0] == name]


def engine_bundle(
    root: Path,
    files: dict[str, dict[str, Any]],
    *,
    frames: int = 16,
    size: int = 112,
    outputs: tuple[dict[str, Any], ...] = ({"name": "score", "units": "BDI-II", "range": [0, 63]},),
) -> Bundle:
    """A bundle listing ``files`` and ``outputs``; files not yet written get their own name as content."""
    root.mkdir(parents=True, exist_ok=True)
    for name in files:
        if not (root / name).exists():
            (root / name).write_bytes(name.encode())
    manifest = {
        "model": {
            "name": "t",
            "architecture": "a",
            "weights": {"source": "random"},
            "parameters": 1,
            "macs_per_window": 1,
        },
        "input": default_input_section(layout="NCTHW", frames=frames, size=size),
        "regions": default_regions_section(size),
        "outputs": list(outputs),
        "artifacts": [{"path": name, **record} for name, record in files.items()],
        "model_card": {
            "intended_use": "t",
            "not_a_diagnostic_device": True,
            "training_data": "t",
            "limitations": ["t"],
        },
    }
    return write_manifest(root, manifest)


FP32 = {"model.onnx": {"kind": "onnx", "precision": "fp32", "target": "any"}}
CALIBRATED = {
    **FP32,
    "model.int8.trt.onnx": {"kind": "onnx", "precision": "int8", "target": "tensorrt"},
    "model.int8.ort.onnx": {"kind": "onnx", "precision": "int8", "target": "onnxruntime-cpu"},
    "calib.trt.cache": {"kind": "trt-calibration-table", "target": "tensorrt"},
}
"""Artifacts of an exported bundle, and of a calibrated one."""
