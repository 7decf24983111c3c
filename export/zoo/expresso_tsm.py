"""expresso-tsm, the default: a 2D ResNet over the frames of a window with temporal shift modules.

Built for INT8 on TensorRT and ONNX Runtime's CPU kernels: only dense Conv2d each followed by its BatchNorm
(folded at export), ReLU, slicing and concatenation, pooling and one Gemm; no Transpose anywhere. The input
``(N, T, 3, H, W)`` is reshaped to ``(N*T, 3, H, W)`` for a cheap 4x4 patch stem, whose output strided slices
reorder time-major (row ``t*N + n``). Every residual block then shifts ``1/shift_div`` of its channels one
frame forward and as many one frame back (Lin et al., "TSM: Temporal Shift Module for Efficient Video
Understanding") by slicing ``N`` rows, an operation ONNX Runtime keeps in its NHWC INT8 layout, where a
reshape to 5D would force transposes around every block. Edges repeat the first/last frame (no zero padding),
so the graph needs no batch-dependent constants. Frames are averaged after global pooling; the head (option
``head``) maps to the range of the option ``scale``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from edge.errors import UsageError
from export.zoo import DEFAULT_SCALE, head_ranges, register, score_head


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """A bias-free Conv2d followed directly by its BatchNorm, so export folds them into one Conv."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_ch))


def patchify(out_ch: int, stride: int) -> nn.Sequential:
    """A non-overlapping ``stride`` x ``stride`` convolution with its BatchNorm: a cheap stem on 3 channels."""
    return nn.Sequential(nn.Conv2d(3, out_ch, stride, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


class TemporalShift(nn.Module):
    """Shift channel groups one frame forward and one frame back in a time-major ``(T*N, C, H, W)`` batch.

    Row ``t*N + n`` holds frame ``t`` of window ``n``, so one frame back is ``N`` rows back: the shift is a slice
    and a concatenation along the first axis, which ONNX Runtime's NHWC kernels run without transposes.
    """

    def __init__(self, frames: int, channels: int, shift_div: int) -> None:
        super().__init__()
        self.fold = channels // shift_div if frames > 1 else 0

    def forward(self, x: torch.Tensor, windows: int) -> torch.Tensor:
        """``x`` (time-major, ``windows`` windows) with its first two channel groups shifted in time."""
        if self.fold == 0:
            return x
        fold = self.fold
        ahead, behind, rest = x[:, :fold], x[:, fold : 2 * fold], x[:, 2 * fold :]
        from_past = torch.cat([ahead[:windows], ahead[:-windows]], dim=0)
        from_future = torch.cat([behind[windows:], behind[-windows:]], dim=0)
        return torch.cat([from_past, from_future, rest], dim=1)


class ShiftBlock(nn.Module):
    """Residual block: temporal shift, 3x3 conv-BN-ReLU, 3x3 conv-BN, plus the (projected) input, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, frames: int, shift_div: int) -> None:
        super().__init__()
        self.shift = TemporalShift(frames, in_ch, shift_div)
        self.conv1 = conv_bn(in_ch, out_ch, 3, stride)
        self.conv2 = conv_bn(out_ch, out_ch, 3)
        self.shortcut = conv_bn(in_ch, out_ch, 1, stride) if stride != 1 or in_ch != out_ch else nn.Identity()
        # one ReLU module per use (no parameters): Captum's DeepLift needs each non-linearity to be its own module
        self.relu1 = nn.ReLU(inplace=True)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, windows: int) -> torch.Tensor:
        """The block's output for time-major ``x`` holding ``windows`` windows."""
        out = self.conv2(self.relu1(self.conv1(self.shift(x, windows))))
        return self.relu2(out + self.shortcut(x))


def _positive_ints(value: object) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(v, int) and v > 0 for v in value)


def check_options(stem: int, stem_stride: int, widths: Sequence[int], blocks: Sequence[int], shift_div: int) -> None:
    """Refuse option values that cannot make a network, naming the bad one."""
    problems = []
    if not _positive_ints([stem]):
        problems.append(f"stem {stem!r} must be a positive integer")
    if stem_stride not in (2, 4):
        problems.append(f"stem_stride {stem_stride!r} must be 2 or 4")
    if not (_positive_ints(widths) and _positive_ints(blocks) and len(widths) == len(blocks)):
        problems.append(f"widths {widths!r} and blocks {blocks!r} must be equally long lists of positive integers")
    if not (isinstance(shift_div, int) and shift_div >= 2):
        problems.append(f"shift_div {shift_div!r} must be an integer >= 2")
    if problems:
        raise UsageError(
            "expresso-tsm options: " + "; ".join(problems),
            fix="e.g. --option stem=32 --option widths=[64,128,160] --option blocks=[1,1,1] --option shift_div=8",
        )


class ExpressoTSM(nn.Module):
    """Temporal-shift ResNet on ``(N, T, 3, H, W)`` windows returning severities ``(N,)``."""

    def __init__(
        self,
        frames: int,
        size: int,
        stem: int,
        stem_stride: int,
        widths: Sequence[int],
        blocks: Sequence[int],
        shift_div: int,
        head: str = "sigmoid",
        scale: str = DEFAULT_SCALE,
        outputs: Sequence[str] = (),
    ) -> None:
        super().__init__()
        check_options(stem, stem_stride, widths, blocks, shift_div)
        self.head = head
        self.output_range = head_ranges(scale, outputs)
        self.frames = frames
        self.input_shape = (-1, 3, size, size)
        stem_conv = conv_bn(3, stem, 3, stride=2) if stem_stride == 2 else patchify(stem, stem_stride)
        self.stem = nn.Sequential(stem_conv, nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        in_ch = stem
        for width, count in zip(widths, blocks, strict=True):
            for index in range(count):
                stride = 2 if index == 0 and (layers or stem_stride == 2) else 1
                layers.append(ShiftBlock(in_ch, width, stride, frames, shift_div))
                in_ch = width
        self.stages = nn.ModuleList(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.channels = in_ch
        self.time_pool = nn.AvgPool2d((frames, 1))
        self.fc = nn.Linear(in_ch, len(self.output_range))
        self._initialize_weights()

    def _initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Severities ``(N,)`` in the scale's range for windows ``(N, T, 3, H, W)``."""
        windows = frames.shape[0]  # read from the input so no shape is taken of a (re-laid-out) feature map
        x = self.stem(frames.reshape(self.input_shape))  # (N*T, C, h, w): frames of window n at rows n*T + t
        x = torch.cat([x[t :: self.frames] for t in range(self.frames)], dim=0)  # time-major (T*N, C, h, w)
        for block in self.stages:
            x = block(x, windows)
        x = self.pool(x)  # (T*N, C, 1, 1)
        x = self.time_pool(x.reshape(1, 1, self.frames, -1))  # (1, 1, 1, N*C): mean over frames
        return score_head(self.fc(x.reshape(-1, self.channels)), self.head, self.output_range, training=self.training)


def options_from_shapes(shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Stem width and stride, stage widths and blocks per stage, read off a state_dict's shapes (``{}`` if unsure).

    Consecutive blocks of one width count as one stage, the way the builder lays them out.
    """
    stem = shapes.get("stem.0.0.weight")
    if stem is None or len(stem) != 4:
        return {}
    options: dict[str, Any] = {"stem": stem[0], "stem_stride": 2 if stem[-1] == 3 else stem[-1]}
    widths: list[int] = []
    blocks: list[int] = []
    index = 0
    while (shape := shapes.get(f"stages.{index}.conv1.0.weight")) is not None:
        if widths and widths[-1] == shape[0] and f"stages.{index}.shortcut.0.weight" not in shapes:
            blocks[-1] += 1
        else:
            widths.append(shape[0])
            blocks.append(1)
        index += 1
    if widths:
        options.update(widths=widths, blocks=blocks)
    return options


@register(
    "expresso-tsm",
    layout="NTCHW",
    description="edge-efficient temporal-shift ResNet (Conv2d/BN/ReLU/slice/concat/pool/Gemm only), INT8-friendly",
    defaults={"stem": 32, "stem_stride": 4, "widths": [64, 128, 160], "blocks": [1, 1, 1], "shift_div": 8},
    head_keys=("fc.weight", "fc.bias"),
    options_from_shapes=options_from_shapes,
)
def build(
    frames: int,
    size: int,
    stem: int,
    stem_stride: int,
    widths: list[int],
    blocks: list[int],
    shift_div: int,
    head: str,
    scale: str,
    outputs: list[str],
) -> nn.Module:
    """expresso-tsm for windows of ``frames`` frames of ``size`` pixels; width, depth, head, scale and outputs from
    the options."""
    return ExpressoTSM(frames, size, stem, stem_stride, widths, blocks, shift_div, head, scale, outputs)
