"""The TensorRT backend's buffer and binding logic, on fake ``tensorrt`` and ``pycuda`` modules (any CPU)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorrt_fakes import FP32, FakeGpu, engine_bundle

from edge.backends import create
from edge.backends.base import Backend
from edge.backends.tensorrt import TensorRTBackend
from edge.errors import BackendUnavailableError, BundleError

FRAMES, SIZE = 4, 16
WINDOW = (3, FRAMES, SIZE, SIZE)  # NCTHW without the batch
ENGINE = b"serialised test engine"


PHQ9 = {"name": "phq9", "units": "PHQ-9", "range": [0, 27]}
BDI = {"name": "bdi", "units": "BDI-II", "range": [0, 63]}


def _engine_bundle(root: Path, gpu: FakeGpu, outputs: tuple[dict[str, Any], ...] = (BDI,), **built_for: Any) -> Any:
    root.mkdir(parents=True)
    (root / "model.fp16.engine").write_bytes(ENGINE)
    record = {
        "tensorrt_version": gpu.tensorrt_version,
        "gpu_name": gpu.name,
        "compute_capability": "{}.{}".format(*gpu.capability),
        "dla_core": None,
        "workspace_mb": 1024,
        **built_for,
    }
    engine = {"kind": "tensorrt-engine", "precision": "fp16", "target": "tensorrt", "built_for": record}
    return engine_bundle(root, {**FP32, "model.fp16.engine": engine}, frames=FRAMES, size=SIZE, outputs=outputs)


def _windows(*values: float) -> np.ndarray:
    """One window per value, every element that value: the fake engine's score is the window's mean."""
    return np.stack([np.full(WINDOW, value, np.float32) for value in values])


def _load(tmp_path: Path, gpu: FakeGpu, **built_for: Any) -> Backend:
    return create("tensorrt", _engine_bundle(tmp_path / "bundle", gpu, **built_for), precision="fp16")


def test_scores_reach_their_rows_and_buffers_are_allocated_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = FakeGpu().install(monkeypatch)
    gpu.add_engine(ENGINE, (-1, *WINDOW), max_batch=4)
    backend = _load(tmp_path, gpu)
    assert (len(gpu.host_allocations), len(gpu.device_memory), len(gpu.streams)) == (2, 2, 1)
    clip_bytes = 4 * int(np.prod(WINDOW)) * 4  # sized for the profile's largest batch
    assert sorted(a.data.nbytes for a in gpu.device_memory.values()) == [4 * 4, clip_bytes]

    np.testing.assert_allclose(backend.infer(_windows(1.5, 2.5, 3.5)), [1.5, 2.5, 3.5])
    values = [float(v) for v in range(10)]  # more than the profile's 4: three runs of 4, 4 and 2
    np.testing.assert_allclose(backend.infer(_windows(*values)), values)

    assert (len(gpu.host_allocations), len(gpu.device_memory), len(gpu.streams)) == (2, 2, 1)
    assert [call[2][0] for call in gpu.calls_named("set_input_shape")] == [3, 4, 4, 2]
    (stream,) = gpu.streams
    assert {call[1] for call in gpu.calls_named("execute_async_v3")} == {stream}
    copies = gpu.calls_named("htod") + gpu.calls_named("dtoh")
    assert len(copies) == 8 and all(pinned and handle == stream for *_, pinned, handle in copies)
    addresses = {name: address for _, name, address in gpu.calls_named("set_tensor_address")}
    assert set(addresses) == {"clip", "score"}
    assert gpu.device_memory[addresses["clip"]].data.nbytes == clip_bytes
    assert gpu.context_stack == []  # every push popped


def test_a_fixed_batch_engine_gets_zero_padding_and_its_dla_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = FakeGpu().install(monkeypatch)
    engine = gpu.add_engine(ENGINE, (2, *WINDOW), max_batch=2, min_batch=2)  # a DLA engine: batch fixed at 2
    backend = _load(tmp_path, gpu, dla_core=1)
    assert gpu.calls_named("deserialize_cuda_engine") == [("deserialize_cuda_engine", ENGINE, 1)]

    np.testing.assert_allclose(backend.infer(_windows(7.0, 9.0)), [7.0, 9.0])
    np.testing.assert_allclose(backend.infer(_windows(4.0)), [4.0])  # runs as a batch of 2, second row padded
    clip_address = next(a for _, name, a in gpu.calls_named("set_tensor_address") if name == engine.names[0])
    padded = gpu.device_memory[clip_address].data.view(np.float32).reshape(2, *WINDOW)
    assert padded[0].min() == padded[0].max() == 4.0
    assert not padded[1].any()  # the 9.0 window of the last call was zeroed, not scored again
    np.testing.assert_allclose(backend.infer(_windows(1.0, 2.0, 3.0)), [1.0, 2.0, 3.0])
    assert [call[2][0] for call in gpu.calls_named("set_input_shape")] == [2, 2, 2, 2]


def test_inference_pushes_the_context_on_another_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu().install(monkeypatch)
    gpu.add_engine(ENGINE, (-1, *WINDOW), max_batch=4)
    backend = _load(tmp_path, gpu)
    with ThreadPoolExecutor(max_workers=1) as worker:  # the daemon scores on its own thread
        scores = worker.submit(backend.infer, _windows(5.0, 6.0)).result()
    np.testing.assert_allclose(scores, [5.0, 6.0])
    assert len(gpu.calls_named("push")) == len(gpu.calls_named("pop"))


def test_an_engine_for_another_tensorrt_is_refused_before_any_allocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = FakeGpu(tensorrt_version="10.4.0").install(monkeypatch)
    gpu.add_engine(ENGINE, (-1, *WINDOW))
    with pytest.raises(BundleError, match=r"built with TensorRT 10\.3\.0, this is TensorRT 10\.4\.0") as caught:
        _load(tmp_path, gpu, tensorrt_version="10.3.0")
    assert "python -m export engine" in str(caught.value.fix)
    assert (gpu.calls_named("deserialize_cuda_engine"), gpu.device_memory, gpu.host_allocations) == ([], {}, [])


def test_an_engine_tensorrt_cannot_read_is_a_bundle_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu().install(monkeypatch)  # no engine registered: deserialize_cuda_engine returns None
    with pytest.raises(BundleError, match=r"could not deserialise model\.fp16\.engine"):
        _load(tmp_path, gpu)
    assert gpu.context_stack == []


def test_a_failed_enqueue_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu().install(monkeypatch)
    gpu.add_engine(ENGINE, (-1, *WINDOW), max_batch=4)
    backend = _load(tmp_path, gpu)
    gpu.engines[ENGINE].names = ("clip", "renamed")  # the engine now expects an address never set
    with pytest.raises(BackendUnavailableError, match="failed to enqueue"):
        backend.infer(_windows(1.0))
    assert gpu.context_stack == []


def test_close_frees_every_buffer_in_the_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = FakeGpu().install(monkeypatch)
    gpu.add_engine(ENGINE, (-1, *WINDOW), max_batch=4)
    backend = _load(tmp_path, gpu)
    backend.close()
    assert all(memory.freed for memory in gpu.device_memory.values())
    assert all(host.freed for host in gpu.host_allocations)
    assert gpu.calls[-2:] == [("pop",), ("detach",)] and gpu.context_stack == []
    with pytest.raises(RuntimeError, match="closed"):
        backend.infer(_windows(1.0))


@pytest.mark.parametrize(
    ("version", "usable"), [("8.2.1", False), ("8.4.3", False), ("8.5.2.2", True), ("10.3.0", True)]
)
def test_probe_names_tensorrt_older_than_8_5(version: str, usable: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeGpu(tensorrt_version=version).install(monkeypatch)
    available, reason = TensorRTBackend.probe()
    assert available is usable
    if not usable:
        assert f"TensorRT {version} is older than 8.5" in reason and "JetPack" in reason


def test_an_engine_of_two_output_columns_gives_each_window_its_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = FakeGpu().install(monkeypatch)
    gpu.add_engine(ENGINE, (-1, *WINDOW), max_batch=4, outputs=2)
    bundle = _engine_bundle(tmp_path / "bundle", gpu, (BDI, PHQ9))
    backend = create("tensorrt", bundle, precision="fp16")
    values = [float(v) for v in range(6)]  # two runs: 4 and 2 windows
    scores = backend.infer_outputs(_windows(*values))
    np.testing.assert_allclose(scores, [[v, v + 1] for v in values])  # column k of the fake: the mean plus k
    np.testing.assert_allclose(backend.infer(_windows(2.0)), [2.0])  # infer: the primary output only


def test_an_engine_whose_width_is_not_the_manifests_outputs_is_a_bundle_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu = FakeGpu().install(monkeypatch)
    gpu.add_engine(ENGINE, (-1, *WINDOW), max_batch=4, outputs=2)
    backend = create("tensorrt", _engine_bundle(tmp_path / "bundle", gpu), precision="fp16")
    with pytest.raises(BundleError, match=r"names 1 output\(s\), so \(N, 1\) was expected"):
        backend.infer(_windows(1.0))
