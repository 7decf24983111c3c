"""The model zoo: registry, expresso-tsm's temporal shift and graph, torchvision-compatible VideoResNets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision_spec import TORCHVISION_ARCHS, torchvision_state_dict

from edge.errors import UsageError
from export.onnx_export import op_counts
from export.zoo import DEFAULT_ARCHITECTURE, architectures, get_architecture
from export.zoo.expresso_tsm import TemporalShift

TINY_OPTIONS = {"stem": 8, "widths": [16, 16], "blocks": [1, 1]}

# Parameter counts torchvision publishes for its Kinetics-400 weights (400-class fc), minus that fc plus ours (1 out).
TORCHVISION_PARAMS = {"r2plus1d_18": 31_505_325, "r3d_18": 33_371_472, "mc3_18": 11_695_440}
HEAD_DIFFERENCE = 512 * 400 + 400 - (512 + 1)


def test_registry_lists_every_architecture_default_first() -> None:
    names = list(architectures())
    assert names[0] == DEFAULT_ARCHITECTURE == "expresso-tsm"
    assert set(names) == {"expresso-tsm", "r2plus1d_18", "r3d_18", "mc3_18"}
    assert get_architecture("expresso-tsm").layout == "NTCHW"
    assert {get_architecture(n).layout for n in TORCHVISION_ARCHS} == {"NCTHW"}


def test_unknown_architecture_option_and_size_are_refused_with_choices() -> None:
    with pytest.raises(UsageError, match="r2plus1d_18") as unknown:
        get_architecture("resnet50")
    assert "resnet50" in str(unknown.value)
    with pytest.raises(UsageError, match="shift_div"):
        get_architecture("expresso-tsm").options({"depth": 3})
    with pytest.raises(UsageError, match="at least 16"):
        get_architecture("expresso-tsm").build(16, 8)
    with pytest.raises(UsageError, match="equally long"):
        get_architecture("expresso-tsm").build(4, 32, {"widths": [16, 32], "blocks": [1]})
    with pytest.raises(UsageError, match="stem_stride 3 must be 2 or 4; shift_div 'x'"):
        get_architecture("expresso-tsm").build(4, 32, {"stem_stride": 3, "shift_div": "x"})


def test_default_tsm_fits_the_size_budget() -> None:
    model = get_architecture("expresso-tsm").build(16, 112)
    parameters = sum(p.numel() for p in model.parameters())
    assert parameters <= 750_000  # FP32 ONNX about 3 MB
    assert all(isinstance(m, torch.nn.Conv2d) for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd))


def test_temporal_shift_moves_one_frame_each_way_within_each_window() -> None:
    frames, windows, channels = 4, 2, 8
    shift = TemporalShift(frames, channels, shift_div=4)  # fold of 2 channels each way
    # time-major rows t*N + n; value encodes (window, frame) so moves are visible
    values = torch.tensor([[100 * n + t for n in range(windows)] for t in range(frames)], dtype=torch.float32)
    x = values.reshape(frames * windows, 1, 1, 1).expand(-1, channels, 3, 3).contiguous()
    out = shift(x, windows).reshape(frames, windows, channels, 3, 3)[..., 0, 0]
    for t in range(frames):
        for n in range(windows):
            assert out[t, n, 0] == out[t, n, 1] == 100 * n + max(t - 1, 0)  # from the past, first frame repeated
            assert out[t, n, 2] == out[t, n, 3] == 100 * n + min(t + 1, frames - 1)  # from the future
            assert torch.all(out[t, n, 4:] == 100 * n + t)  # untouched


def test_tsm_scores_a_batch_as_it_scores_each_window_and_stays_in_range() -> None:
    torch.manual_seed(0)
    model = get_architecture("expresso-tsm").build(4, 32, TINY_OPTIONS)
    clips = torch.randn(3, 4, 3, 32, 32) * 3
    with torch.no_grad():
        together = model(clips)
        alone = torch.cat([model(clips[i : i + 1]) for i in range(3)])
    assert together.shape == (3,)
    torch.testing.assert_close(together, alone)
    assert torch.all((together >= 0) & (together <= 63))
    assert len(set(together.tolist())) == 3  # windows are told apart


def test_tsm_onnx_graph_has_only_int8_friendly_operators(exported_bundle_dir: Path) -> None:
    ops = op_counts(exported_bundle_dir / "model.fp32.onnx")
    assert "Transpose" not in ops and "BatchNormalization" not in ops
    assert ops["Conv"] == 1 + 2 * 3  # stem + two blocks of (conv1, conv2, shortcut)
    allowed = {"Conv", "Relu", "Slice", "Concat", "Add", "Reshape", "GlobalAveragePool", "AveragePool", "Gemm"}
    allowed |= {"Sigmoid", "Mul", "Flatten", "Shape", "Gather", "Constant", "Identity", "Unsqueeze", "Neg"}
    assert set(ops) <= allowed, set(ops) - allowed


@pytest.mark.parametrize("name", TORCHVISION_ARCHS)
def test_torchvision_state_dict_loads_with_strict_keys(name: str) -> None:
    model = get_architecture(name).build(4, 32)
    state = torchvision_state_dict(name, num_classes=1)
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[name] - HEAD_DIFFERENCE
    with torch.no_grad():
        scores = model(torch.randn(2, 3, 4, 32, 32))
    assert scores.shape == (2,)
