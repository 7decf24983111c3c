"""R3D-18: full 3x3x3 convolutions in every stage (torchvision ``r3d_18``)."""

from __future__ import annotations

from torch import nn

from export.zoo import register
from export.zoo.video_resnet import HEAD_KEYS, BasicStem, Conv3DSimple, VideoResNet


@register(
    "r3d_18",
    layout="NCTHW",
    description="R3D-18 (torchvision names; fine-tune from Kinetics-400)",
    head_keys=HEAD_KEYS,
    torchvision=True,
)
def build(frames: int, size: int, head: str, scale: str, outputs: list[str]) -> nn.Module:
    """R3D-18 with a regression head on the scale of the option ``scale``; any window length and frame size work."""
    return VideoResNet(BasicStem, [Conv3DSimple] * 4, head=head, scale=scale, outputs=outputs)
