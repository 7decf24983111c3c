"""ONNX Runtime backend: CPU everywhere, CUDA or TensorRT execution providers where the build has them."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.backends.base import Backend
from edge.bundle import Artifact, Bundle

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def providers_for(precision: str, offered: list[str]) -> list[str]:
    """Execution providers for a model of ``precision``, best first, among those ``offered``.

    The INT8 model for ONNX Runtime has uint8 activations placed for its CPU kernels; TensorRT accepts only
    zero-point-0 int8, so that model runs on the CPU provider alone. FP32 goes to a GPU provider when there is one.
    """
    wanted = ("CPUExecutionProvider",) if precision == "int8" else (*_GPU_PROVIDERS, "CPUExecutionProvider")
    return [p for p in wanted if p in offered]


class OnnxRuntimeBackend(Backend):
    """Runs the bundle's ONNX models with ONNX Runtime."""

    key = "onnxruntime"

    @classmethod
    def _probe(cls) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
            return False, f"onnxruntime does not import ({exc})"
        return True, ""

    @classmethod
    def install_hint(cls) -> str:
        return "pip install onnxruntime (or onnxruntime-gpu on a CUDA machine)"

    @classmethod
    def runnable_precisions(cls, bundle: Bundle) -> list[str]:
        """INT8 built for ONNX Runtime's CPU kernels first, then FP32."""
        found = []
        if bundle.find("onnx", precision="int8", target="onnxruntime-cpu") is not None:
            found.append("int8")
        if bundle.find("onnx", precision="fp32") is not None:
            found.append("fp32")
        return found

    def _artifact(self) -> Artifact:
        target = "onnxruntime-cpu" if self.precision == "int8" else None
        artifact = self.bundle.find("onnx", precision=self.precision, target=target)
        assert artifact is not None  # _choose_precision guarantees it
        return artifact

    def _load(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._model_file = self._artifact()
        self._session = ort.InferenceSession(
            str(self.bundle.path_of(self._model_file)),
            sess_options=options,
            providers=providers_for(self.precision, ort.get_available_providers()),
        )
        self._input_name = self._session.get_inputs()[0].name

    def _infer(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        (scores,) = self._session.run(None, {self._input_name: batch})
        return np.asarray(scores, dtype=np.float32)

    def _describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        return {
            "runtime": f"onnxruntime {ort.__version__}",
            "providers": self._session.get_providers(),
            "device": "cpu" if self._session.get_providers()[0] == "CPUExecutionProvider" else "gpu",
            "model_file": self._model_file.path,
            "threads": self.threads or (os.cpu_count() or 1),
        }
