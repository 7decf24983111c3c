"""MC3-18: 3D convolutions in the first stage, spatial-only 1x3x3 above it (torchvision ``mc3_18``)."""

from __future__ import annotations

from torch import nn

from export.zoo import register
from export.zoo.video_resnet import HEAD_KEYS, BasicStem, Conv3DNoTemporal, Conv3DSimple, VideoResNet


@register(
    "mc3_18",
    layout="NCTHW",
    description="MC3-18 mixed 3D/2D convolutions (torchvision names; fine-tune from Kinetics-400)",
    head_keys=HEAD_KEYS,
    torchvision=True,
)
def build(frames: int, size: int, head: str, scale: str, outputs: list[str]) -> nn.Module:
    """MC3-18 with a regression head on the scale of the option ``scale``; any window length and frame size work."""
    return VideoResNet(
        BasicStem,
        [Conv3DSimple, Conv3DNoTemporal, Conv3DNoTemporal, Conv3DNoTemporal],
        head=head,
        scale=scale,
        outputs=outputs,
    )
