"""TensorRT backend: runs a bundle's serialised engine with pycuda buffers on one CUDA stream.

Supported: TensorRT 8.5 to 10.x, driven by tensor names (``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``): JetPack 6 (Orin; Ubuntu 22.04 and Python 3.10, TensorRT 8.6 or 10.3) and JetPack 5.1+
(Xavier and Orin, TensorRT 8.5; its system Python is 3.8, so TensorRT's Python bindings must be built for the
Python 3.10+ this package needs). Jetson Nano, TX1 and TX2 stop at JetPack 4.6 (TensorRT 8.2, Python 3.6) and cannot
run this package; the probe refuses a TensorRT older than 8.5 by name.

An engine only runs on the GPU model and TensorRT version it was built for (``python -m export engine`` records
them as the artifact's ``built_for``); loading refuses any other with a :class:`BundleError`. Page-locked host
buffers and device buffers are sized once for the engine's largest batch and reused; each call copies in, runs and
copies out asynchronously on one stream, then synchronises. The device's primary CUDA context (the one TensorRT's
runtime API uses too) is retained at load and pushed and popped around each call, so inference may run on another
thread than the one that loaded the engine (the daemon scores on its own worker thread).

The pure parts (device records, precision choice, shapes, batch chunks) are plain functions tested on any CPU.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.backends.base import Backend
from edge.bundle import Bundle
from edge.errors import BackendUnavailableError, BundleError, InputError

PRECISIONS = ("int8", "fp16", "fp32")
"""Engine precisions, fastest first."""

MIN_TENSORRT = (8, 5)
"""The oldest TensorRT with the named-tensor API this backend drives (JetPack 5.1)."""


@dataclass(frozen=True)
class DeviceInfo:
    """The GPU and TensorRT an engine is built for or run on."""

    gpu_name: str
    compute_capability: str  # "8.7"
    tensorrt_version: str
    fast_fp16: bool
    fast_int8: bool
    dla_cores: int = 0

    def record(self, *, dla_core: int | None, workspace_mb: int) -> dict[str, Any]:
        """The manifest's ``built_for`` of an engine built here."""
        return {
            "tensorrt_version": self.tensorrt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": self.compute_capability,
            "dla_core": dla_core,
            "workspace_mb": workspace_mb,
        }


def fast_precisions_of(compute_capability: str) -> tuple[bool, bool]:
    """``(fast fp16, fast int8)`` by compute capability, where TensorRT does not say: Maxwell Jetsons (5.3) and
    TX2 (6.2) have FP16 but no fast INT8; 6.1 has DP4A INT8 but slow FP16; Volta (7.0) and newer have both."""
    major, minor = (int(part) for part in compute_capability.split(".")[:2])
    fp16 = (major, minor) in ((5, 3), (6, 0), (6, 2)) or major >= 7
    int8 = (major, minor) == (6, 1) or major >= 7
    return fp16, int8


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def built_for_mismatch(built_for: Mapping[str, Any], here: DeviceInfo) -> str | None:
    """Why an engine built for ``built_for`` cannot run on ``here`` (None when it can)."""
    if _release(str(built_for.get("tensorrt_version", ""))) != _release(here.tensorrt_version):
        return (
            f"it was built with TensorRT {built_for.get('tensorrt_version')}, this is TensorRT {here.tensorrt_version}"
        )
    if str(built_for.get("compute_capability")) != here.compute_capability:
        return (
            f"it was built for {built_for.get('gpu_name')} (compute capability {built_for.get('compute_capability')}), "
            f"this GPU is {here.gpu_name} ({here.compute_capability})"
        )
    if str(built_for.get("gpu_name")) != here.gpu_name:
        return f"it was built on a {built_for.get('gpu_name')}, this GPU is a {here.gpu_name}"
    if built_for.get("dla_core") is not None and int(built_for["dla_core"]) >= here.dla_cores:
        return f"it runs on DLA core {built_for['dla_core']}, this device has {here.dla_cores} DLA cores"
    return None


def choose_precision(requested: str, device: DeviceInfo, offered: Sequence[str]) -> str:
    """The precision to build or run: ``auto`` is the fastest ``offered`` one the GPU runs fast; INT8 on a GPU
    without fast INT8 (Jetson Nano, TX1, TX2) is refused with a pointer to FP16."""
    usable = [p for p in PRECISIONS if p in offered]
    if requested == "auto":
        fast = [p for p in usable if (p != "int8" or device.fast_int8) and (p != "fp16" or device.fast_fp16)]
        if not fast:
            raise InputError(f"nothing to build or run among {list(offered)}", fix="export the bundle first")
        return fast[0]
    if requested not in PRECISIONS:
        raise InputError(f"unknown precision {requested!r}", fix=f"choose one of: auto, {', '.join(PRECISIONS)}")
    if requested == "int8" and not device.fast_int8:
        raise InputError(
            f"{device.gpu_name} (compute capability {device.compute_capability}) has no fast INT8: TensorRT reports "
            "platform_has_fast_int8 = False (Jetson Nano and TX1 are Maxwell, TX2 is Pascal sm_62); an INT8 engine "
            "would run no faster than FP16 or fail to build",
            fix="set model.precision to fp16 or auto, which picks the best this GPU has (--precision on the command "
            "line)",
        )
    if requested not in usable:
        raise InputError(f"precision {requested!r} is not available; there is {usable}", fix="pick one of those")
    return requested


@dataclass(frozen=True)
class TensorSpec:
    """One engine input or output: name, direction, shape (-1 for the dynamic batch axis) and numpy dtype."""

    name: str
    is_input: bool
    shape: tuple[int, ...]
    dtype: str

    def at_batch(self, batch: int) -> tuple[int, ...]:
        """The concrete shape for ``batch`` windows (only axis 0 may be dynamic)."""
        if any(dim < 0 for dim in self.shape[1:]):
            raise BundleError(
                f"engine tensor {self.name} has dynamic axes {self.shape} besides the batch",
                fix="export the ONNX model with only the batch axis dynamic",
            )
        return (batch if self.shape[0] < 0 else self.shape[0], *self.shape[1:])

    def nbytes(self, batch: int) -> int:
        """Buffer size for ``batch`` windows."""
        return int(np.prod(self.at_batch(batch))) * np.dtype(self.dtype).itemsize


def run_batch(count: int, min_batch: int) -> int:
    """The batch to run ``count`` windows at: an engine built with a fixed batch (DLA) gets zero padding."""
    return max(count, min_batch)


def batch_chunks(count: int, max_batch: int) -> list[tuple[int, int]]:
    """``(start, stop)`` slices of at most ``max_batch`` windows covering ``count``."""
    if max_batch < 1:
        raise BundleError(f"engine maximum batch {max_batch} is not positive", fix="rebuild the engine")
    return [(start, min(start + max_batch, count)) for start in range(0, count, max_batch)]


def query_device(tensorrt: Any, device_index: int = 0) -> DeviceInfo:
    """The GPU's name and compute capability (pycuda) and what TensorRT's builder says it runs fast."""
    import pycuda.driver as cuda

    cuda.init()
    device = cuda.Device(device_index)
    capability = "{}.{}".format(*device.compute_capability())
    fp16, int8 = fast_precisions_of(capability)
    builder = tensorrt.Builder(tensorrt.Logger(tensorrt.Logger.ERROR))
    return DeviceInfo(
        gpu_name=str(device.name()),
        compute_capability=capability,
        tensorrt_version=str(tensorrt.__version__),
        fast_fp16=bool(getattr(builder, "platform_has_fast_fp16", fp16)),
        fast_int8=bool(getattr(builder, "platform_has_fast_int8", int8)),
        dla_cores=int(getattr(builder, "num_DLA_cores", 0)),
    )


class TensorRTBackend(Backend):
    """Runs the bundle's TensorRT engine for this GPU."""

    key = "tensorrt"

    @classmethod
    def _probe(cls) -> tuple[bool, str]:
        try:
            import pycuda.driver as cuda
            import tensorrt
        except ImportError as exc:
            return False, f"tensorrt or pycuda does not import ({exc})"
        if _release(tensorrt.__version__)[:2] < MIN_TENSORRT:
            return False, (
                f"TensorRT {tensorrt.__version__} is older than 8.5 (JetPack 4.x: Jetson Nano, TX1, TX2); "
                "this package needs TensorRT 8.5+ (JetPack 5.1 or 6) and Python 3.10"
            )
        try:
            cuda.init()
            if cuda.Device.count() == 0:
                return False, "no CUDA device"
        except cuda.Error as exc:
            return False, f"CUDA is not usable ({exc})"
        return True, ""

    @classmethod
    def install_hint(cls) -> str:
        return "on a Jetson, JetPack ships TensorRT; pip install pycuda; then build an engine: python -m export engine"

    @classmethod
    def runnable_precisions(cls, bundle: Bundle) -> list[str]:
        """Precisions of the bundle's engines, fastest first."""
        return [p for p in PRECISIONS if bundle.find("tensorrt-engine", precision=p) is not None]

    def _load(self) -> None:
        import pycuda.driver as cuda
        import tensorrt as trt

        artifact = self.bundle.find("tensorrt-engine", precision=self.precision)
        assert artifact is not None  # _choose_precision guarantees it
        self._device = query_device(trt)
        problem = built_for_mismatch(artifact.record.get("built_for", {}), self._device)
        if problem:
            raise BundleError(
                f"engine {artifact.path} in {self.bundle.root} cannot run here: {problem}",
                fix=f"build it on this device: python -m export engine {self.bundle.root} --precision {self.precision}",
            )
        self._artifact = artifact
        self._context_cuda = cuda.Device(0).retain_primary_context()
        self._context_cuda.push()
        try:
            self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            dla_core = artifact.record.get("built_for", {}).get("dla_core")
            if dla_core is not None:  # a DLA engine runs on the core the runtime names
                self._runtime.DLA_core = int(dla_core)
            self._engine = self._runtime.deserialize_cuda_engine(self.bundle.path_of(artifact).read_bytes())
            if self._engine is None:
                raise BundleError(f"TensorRT could not deserialise {artifact.path}", fix="rebuild the engine")
            self._context = self._engine.create_execution_context()
            self._tensors = self._tensor_specs(trt)
            self._min_batch, self._max_batch = self._batch_range()
            self._host = {t.name: cuda.pagelocked_empty(t.at_batch(self._max_batch), t.dtype) for t in self._tensors}
            self._device_mem = {t.name: cuda.mem_alloc(t.nbytes(self._max_batch)) for t in self._tensors}
            self._stream = cuda.Stream()
        finally:
            self._context_cuda.pop()

    def _batch_range(self) -> tuple[int, int]:
        """Smallest and largest batch of optimization profile 0."""
        clip = next(t for t in self._tensors if t.is_input)
        if clip.shape[0] >= 0:
            return clip.shape[0], clip.shape[0]
        low, _, high = self._engine.get_tensor_profile_shape(clip.name, 0)
        return int(low[0]), int(high[0])

    def _tensor_specs(self, trt: Any) -> list[TensorSpec]:
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        return [
            TensorSpec(
                n,
                engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT,
                tuple(engine.get_tensor_shape(n)),
                np.dtype(trt.nptype(engine.get_tensor_dtype(n))).str,
            )
            for n in names
        ]

    def _infer(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        import pycuda.driver as cuda

        inputs = [t for t in self._tensors if t.is_input]
        output = next(t for t in self._tensors if not t.is_input)
        if len(inputs) != 1:
            raise BundleError(f"engine has inputs {[t.name for t in inputs]}; expected one", fix="rebuild the engine")
        scores = []
        self._context_cuda.push()
        try:
            for start, stop in batch_chunks(len(batch), self._max_batch):
                scores.append(self._run_chunk(cuda, inputs[0], output, batch[start:stop]))
        finally:
            self._context_cuda.pop()
        return np.concatenate(scores).astype(np.float32)

    def _run_chunk(
        self, cuda: Any, tensor_in: TensorSpec, tensor_out: TensorSpec, chunk: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        count = len(chunk)
        padded = run_batch(count, self._min_batch)
        host_in, host_out = self._host[tensor_in.name][:padded], self._host[tensor_out.name][:padded]
        np.copyto(host_in[:count], chunk, casting="same_kind")
        host_in[count:] = 0
        cuda.memcpy_htod_async(self._device_mem[tensor_in.name], host_in, self._stream)
        self._context.set_input_shape(tensor_in.name, tensor_in.at_batch(padded))
        for tensor in self._tensors:
            self._context.set_tensor_address(tensor.name, int(self._device_mem[tensor.name]))
        ok = self._context.execute_async_v3(stream_handle=self._stream.handle)
        if not ok:
            raise BackendUnavailableError("TensorRT failed to enqueue the engine", fix="check the log above")
        cuda.memcpy_dtoh_async(host_out, self._device_mem[tensor_out.name], self._stream)
        self._stream.synchronize()
        return np.array(host_out.reshape(padded, -1)[:count], dtype=np.float32)  # (count, K)

    def _describe(self) -> dict[str, Any]:
        return {
            "runtime": f"tensorrt {self._device.tensorrt_version}",
            "device": f"{self._device.gpu_name} (sm {self._device.compute_capability})",
            "model_file": self._artifact.path,
            "dla_core": self._artifact.record.get("built_for", {}).get("dla_core"),
            "max_batch": self._max_batch,
        }

    def close(self) -> None:
        """Free device buffers and release the CUDA context."""
        if not self._closed and hasattr(self, "_device_mem"):
            self._context_cuda.push()
            try:
                for memory in self._device_mem.values():
                    memory.free()
                for host in self._host.values():
                    host.base.free()  # pagelocked: freed here, in its context, not at garbage collection
                del self._context, self._engine, self._stream
            finally:
                self._context_cuda.pop()
                self._context_cuda.detach()
        super().close()
