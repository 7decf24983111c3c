"""State_dicts named and shaped as torchvision's video ResNets save them, written from its architecture spec.

torchvision cannot be installed here; these follow ``torchvision/models/video/resnet.py`` (VideoResNet,
BasicBlock with ``midplanes = (in*out*27) // (in*9 + 3*out)``, R2Plus1dStem / BasicStem, Conv2Plus1D as
Sequential(conv, bn, relu, conv), downsample = Sequential(1x1x1 conv, bn) where stride or width changes).
"""

from __future__ import annotations

import torch

TORCHVISION_ARCHS = ("r2plus1d_18", "r3d_18", "mc3_18")
_CONVS = {
    "r2plus1d_18": ("2plus1d",) * 4,
    "r3d_18": ("3d",) * 4,
    "mc3_18": ("3d", "spatial", "spatial", "spatial"),
}


def _bn(shapes: dict[str, tuple[int, ...]], prefix: str, channels: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{prefix}.{name}"] = (channels,)
    shapes[f"{prefix}.num_batches_tracked"] = ()


def _conv(shapes: dict[str, tuple[int, ...]], prefix: str, kind: str, cin: int, cout: int, mid: int) -> None:
    if kind == "2plus1d":
        shapes[f"{prefix}.0.weight"] = (mid, cin, 1, 3, 3)
        _bn(shapes, f"{prefix}.1", mid)
        shapes[f"{prefix}.3.weight"] = (cout, mid, 3, 1, 1)
    else:
        shapes[f"{prefix}.weight"] = (cout, cin, 3 if kind == "3d" else 1, 3, 3)


def torchvision_shapes(arch: str, num_classes: int = 400) -> dict[str, tuple[int, ...]]:
    """Every state_dict key of torchvision's ``arch`` with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    if arch == "r2plus1d_18":
        shapes["stem.0.weight"] = (45, 3, 1, 7, 7)
        _bn(shapes, "stem.1", 45)
        shapes["stem.3.weight"] = (64, 45, 3, 1, 1)
        _bn(shapes, "stem.4", 64)
    else:
        shapes["stem.0.weight"] = (64, 3, 3, 7, 7)
        _bn(shapes, "stem.1", 64)
    inplanes = 64
    for stage, (planes, kind) in enumerate(zip((64, 128, 256, 512), _CONVS[arch], strict=True), start=1):
        for block in range(2):
            cin = inplanes if block == 0 else planes
            mid = (cin * planes * 27) // (cin * 9 + 3 * planes)
            prefix = f"layer{stage}.{block}"
            _conv(shapes, f"{prefix}.conv1.0", kind, cin, planes, mid)
            _bn(shapes, f"{prefix}.conv1.1", planes)
            _conv(shapes, f"{prefix}.conv2.0", kind, planes, planes, mid)
            _bn(shapes, f"{prefix}.conv2.1", planes)
            if block == 0 and cin != planes:
                shapes[f"{prefix}.downsample.0.weight"] = (planes, cin, 1, 1, 1)
                _bn(shapes, f"{prefix}.downsample.1", planes)
        inplanes = planes
    shapes["fc.weight"] = (num_classes, 512)
    shapes["fc.bias"] = (num_classes,)
    return shapes


def torchvision_state_dict(arch: str, num_classes: int = 400, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state_dict with torchvision's names and shapes for ``arch`` (BatchNorm statistics kept sane)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_shapes(arch, num_classes).items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state
