"""VideoResNet building blocks with torchvision's module names, so its video state_dicts load with strict keys.

Follows ``torchvision.models.video.resnet`` (R3D, MC3, R(2+1)D of Tran et al., "A Closer Look at
Spatiotemporal Convolutions for Action Recognition"), with the 400-class ``fc`` replaced by a one-output
regression head under the same key names (``fc.weight``, ``fc.bias``) mapped to the range of the option ``scale``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import nn

from export.zoo import DEFAULT_SCALE, head_ranges, score_head

HEAD_KEYS = ("fc.weight", "fc.bias")
STAGE_PLANES = (64, 128, 256, 512)


class ConvBuilder(Protocol):
    """A spatio-temporal convolution factory, as torchvision's ``conv_makers``."""

    def __call__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1) -> nn.Module: ...

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]: ...


class Conv3DSimple(nn.Conv3d):
    """A full 3x3x3 convolution (R3D)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1) -> None:
        super().__init__(in_planes, out_planes, kernel_size=(3, 3, 3), stride=stride, padding=1, bias=False)

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        """Stride of the shortcut's 1x1x1 convolution."""
        return stride, stride, stride


class Conv3DNoTemporal(nn.Conv3d):
    """A 1x3x3 convolution: spatial only (MC3's upper layers)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1) -> None:
        super().__init__(
            in_planes, out_planes, kernel_size=(1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False
        )

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        """Stride of the shortcut's 1x1x1 convolution."""
        return 1, stride, stride


class Conv2Plus1D(nn.Sequential):
    """A 1x3x3 spatial then 3x1x1 temporal convolution with ``midplanes`` channels between (R(2+1)D)."""

    def __init__(self, in_planes: int, out_planes: int, midplanes: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(
                in_planes, midplanes, kernel_size=(1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False
            ),
            nn.BatchNorm3d(midplanes),
            nn.ReLU(inplace=True),
            nn.Conv3d(
                midplanes, out_planes, kernel_size=(3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False
            ),
        )

    @staticmethod
    def get_downsample_stride(stride: int) -> tuple[int, int, int]:
        """Stride of the shortcut's 1x1x1 convolution."""
        return stride, stride, stride


class BasicBlock(nn.Module):
    """Two convolutions with BatchNorm and a residual shortcut."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        conv_builder: ConvBuilder,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        midplanes = (inplanes * planes * 3 * 3 * 3) // (inplanes * 3 * 3 + 3 * planes)
        self.conv1 = nn.Sequential(
            conv_builder(inplanes, planes, midplanes, stride), nn.BatchNorm3d(planes), nn.ReLU(True)
        )
        self.conv2 = nn.Sequential(conv_builder(planes, planes, midplanes), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Two convolutions plus the (downsampled) input, then ReLU."""
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + residual)


class BasicStem(nn.Sequential):
    """3x7x7 convolution, BatchNorm, ReLU (R3D, MC3)."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv3d(3, 64, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )


class R2Plus1dStem(nn.Sequential):
    """1x7x7 spatial then 3x1x1 temporal convolution, each with BatchNorm and ReLU (R(2+1)D)."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv3d(3, 45, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(45),
            nn.ReLU(inplace=True),
            nn.Conv3d(45, 64, kernel_size=(3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(64),
            nn.ReLU(inplace=True),
        )


class VideoResNet(nn.Module):
    """ResNet-18-shaped video network on ``(N, 3, T, H, W)`` windows returning severities ``(N,)``."""

    def __init__(
        self,
        stem: type[nn.Module],
        conv_makers: Sequence[ConvBuilder],
        layers: Sequence[int] = (2, 2, 2, 2),
        head: str = "sigmoid",
        scale: str = DEFAULT_SCALE,
        outputs: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.head = head
        self.output_range = head_ranges(scale, outputs)
        self.inplanes = 64
        self.stem = stem()
        self.layer1 = self._make_layer(conv_makers[0], STAGE_PLANES[0], layers[0], stride=1)
        self.layer2 = self._make_layer(conv_makers[1], STAGE_PLANES[1], layers[1], stride=2)
        self.layer3 = self._make_layer(conv_makers[2], STAGE_PLANES[2], layers[2], stride=2)
        self.layer4 = self._make_layer(conv_makers[3], STAGE_PLANES[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Linear(STAGE_PLANES[3], len(self.output_range))
        self._initialize_weights()

    def _make_layer(self, conv_builder: ConvBuilder, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv3d(
                    self.inplanes, planes, kernel_size=1, stride=conv_builder.get_downsample_stride(stride), bias=False
                ),
                nn.BatchNorm3d(planes),
            )
        layers = [BasicBlock(self.inplanes, planes, conv_builder, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes, conv_builder) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _initialize_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        reset_head(self.fc)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Severities ``(N,)`` in the scale's range for windows ``(N, 3, T, H, W)``."""
        x = self.stem(frames)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return score_head(self.fc(self.avgpool(x).flatten(1)), self.head, self.output_range, training=self.training)


def reset_head(fc: nn.Linear) -> None:
    """Initialise a regression head as torchvision initialises its classifier."""
    nn.init.normal_(fc.weight, 0.0, 0.01)
    nn.init.zeros_(fc.bias)
