"""R(2+1)D-18: factorised 1x3x3 spatial + 3x1x1 temporal convolutions (torchvision ``r2plus1d_18``)."""

from __future__ import annotations

from torch import nn

from export.zoo import register
from export.zoo.video_resnet import HEAD_KEYS, Conv2Plus1D, R2Plus1dStem, VideoResNet


@register(
    "r2plus1d_18",
    layout="NCTHW",
    description="R(2+1)D-18 (torchvision names; fine-tune from Kinetics-400), about 40 GMAC at 16x112x112",
    head_keys=HEAD_KEYS,
    torchvision=True,
)
def build(frames: int, size: int, head: str, scale: str, outputs: list[str]) -> nn.Module:
    """R(2+1)D-18 with a regression head on the scale of the option ``scale``; any window length and frame size work."""
    return VideoResNet(R2Plus1dStem, [Conv2Plus1D] * 4, head=head, scale=scale, outputs=outputs)
