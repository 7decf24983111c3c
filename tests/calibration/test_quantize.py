"""Q/DQ models from one set of ranges: graph validity, placement per target, per-channel weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from tiny_bundle import WIDTH, make_bundle, make_windows

from calibration.collect import collect_from_windows, write_set
from calibration.dataset import load_set
from calibration.quantize import (
    ONNXRUNTIME_CPU,
    TENSORRT,
    amax_of,
    calibrate_ranges,
    head_nodes,
    quantize_variant,
)
from calibration.trt_table import table_from_amax


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("q")
    bundle = make_bundle(tmp / "bundle")
    write_set(tmp / "set", collect_from_windows(make_windows(12)), bundle.input, bundle.tiles)
    cset = load_set(tmp / "set")
    source = bundle.root / "model.onnx"
    ranges = calibrate_ranges(source, cset.batches(range(len(cset)), bundle.input), method="minmax")
    (tmp / "table.txt").write_text(table_from_amax(amax_of(ranges)).to_text())
    return {
        "fp32": source,
        "trt": quantize_variant(source, tmp / "trt.onnx", ranges, TENSORRT),
        "ort": quantize_variant(source, tmp / "ort.onnx", ranges, ONNXRUNTIME_CPU),
        "table": tmp / "table.txt",
    }


def _graph(path: Path) -> tuple[list[onnx.NodeProto], dict[str, np.ndarray], dict[str, onnx.NodeProto]]:
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    return list(model.graph.node), inits, producer


@pytest.mark.parametrize("variant", ["trt", "ort"])
def test_every_quantized_conv_reads_dequantized_input_and_per_channel_weights(
    models: dict[str, Path], variant: str
) -> None:
    nodes, inits, producer = _graph(models[variant])
    convs = [n for n in nodes if n.op_type == "Conv"]
    assert len(convs) == 2
    for conv in convs:
        data, weight = producer[conv.input[0]], producer[conv.input[1]]
        assert data.op_type == "DequantizeLinear" and weight.op_type == "DequantizeLinear"
        quantized, scale = inits[weight.input[0]], inits[weight.input[1]]
        assert quantized.dtype == np.int8
        assert scale.shape == (WIDTH,)  # one scale per output channel
        assert {a.name: a.i for a in weight.attribute}.get("axis", 1) == 0
        assert not inits[weight.input[2]].any()  # symmetric weights


def test_tensorrt_variant_has_symmetric_int8_activations_and_nothing_between_conv_and_relu(
    models: dict[str, Path],
) -> None:
    nodes, inits, _ = _graph(models["trt"])
    quantizers = [n for n in nodes if n.op_type == "QuantizeLinear"]
    assert quantizers
    for q in quantizers:
        zero_point = inits[q.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any()
    consumers = {name: [n for n in nodes if name in n.input] for n in nodes for name in n.output}
    for conv in (n for n in nodes if n.op_type == "Conv"):
        after = consumers[conv.output[0]]
        assert [n.op_type for n in after] == ["Relu"]  # conv + bias + relu stay fusable
    # bias stays float for TensorRT to fold
    assert all(inits[n.input[2]].dtype == np.float32 for n in nodes if n.op_type == "Conv")


def test_onnxruntime_variant_has_uint8_activations(models: dict[str, Path]) -> None:
    nodes, inits, _ = _graph(models["ort"])
    activations = [inits[n.input[2]] for n in nodes if n.op_type == "QuantizeLinear"]
    assert activations and all(zp.dtype == np.uint8 for zp in activations)


def test_head_stays_float_so_the_score_is_not_quantized(models: dict[str, Path]) -> None:
    model = onnx.load(str(models["fp32"]))
    assert head_nodes(model) == ["head", "squash", "to_bdi", "flatten"]
    for variant in ("trt", "ort"):
        nodes, _, producer = _graph(models[variant])
        assert producer["score"].op_type == "Reshape"
        gemm = next(n for n in nodes if n.op_type == "Gemm")
        assert gemm.input[1] == "wf"  # float weights in the head


def test_variants_share_one_set_of_ranges(models: dict[str, Path]) -> None:
    _, trt_inits, _ = _graph(models["trt"])
    _, ort_inits, _ = _graph(models["ort"])
    table = {line.split(": ")[0]: line.split(": ")[1] for line in models["table"].read_text().splitlines()[1:]}
    amax = float(np.frombuffer(bytes.fromhex(table["r1"]), dtype=">f4")[0]) * 127
    assert float(trt_inits["r1_scale"]) == pytest.approx(amax / 127, rel=1e-5)  # TensorRT: amax / 127
    low_high = float(ort_inits["r1_scale"]) * 255  # ONNX Runtime: (high - low) / 255 with low = 0 after ReLU
    assert low_high == pytest.approx(amax, rel=1e-5)
