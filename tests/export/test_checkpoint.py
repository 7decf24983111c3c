"""Checkpoint formats: plain state_dict, Lightning with a prefix, torchvision Kinetics weights, and wrong ones."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torchvision_spec import torchvision_state_dict

from edge.bundle import sha256_of
from edge.errors import BundleError
from export.checkpoint import CheckpointError, best_prefix, load_checkpoint, read_checkpoint
from export.zoo import get_architecture

TSM = get_architecture("expresso-tsm")
OPTIONS = {"stem": 8, "widths": [16, 16], "blocks": [1, 1]}


def _tiny(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return TSM.build(4, 32, OPTIONS)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_plain_state_dict_loads(tmp_path: Path) -> None:
    source, target = _tiny(1), _tiny(2)
    path = tmp_path / "plain.pt"
    torch.save(source.state_dict(), path)
    info = load_checkpoint(target, path, TSM)
    assert _same_weights(source, target)
    assert (info.format, info.prefix, info.reinitialised) == ("state_dict", "", ())
    assert info.sha256 == sha256_of(path)


@pytest.mark.parametrize("prefix", ["model.", "net.", "module.model."])
def test_lightning_checkpoint_with_prefix_loads_and_ignores_other_parts(tmp_path: Path, prefix: str) -> None:
    source, target = _tiny(3), _tiny(4)
    state = {prefix + k: v for k, v in source.state_dict().items()}
    state["criterion.pos_weight"] = torch.ones(1)  # another part of the LightningModule
    checkpoint = {"epoch": 3, "global_step": 120, "hyper_parameters": {"lr": 1e-3}, "state_dict": state}
    path = tmp_path / "lightning.ckpt"
    torch.save(checkpoint, path)
    info = load_checkpoint(target, path, TSM)
    assert _same_weights(source, target)
    assert (info.format, info.prefix, info.ignored) == ("lightning", prefix, ("criterion.pos_weight",))


def test_net_prefixed_plain_state_dict_loads(tmp_path: Path) -> None:
    source, target = _tiny(5), _tiny(6)
    path = tmp_path / "net.pt"
    torch.save({f"net.{k}": v for k, v in source.state_dict().items()}, path)
    assert load_checkpoint(target, path, TSM).prefix == "net."
    assert _same_weights(source, target)


def test_torchvision_kinetics_weights_load_with_the_400_class_head_reinitialised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    arch = get_architecture("mc3_18")
    model = arch.build(4, 32)
    kinetics = torchvision_state_dict("mc3_18", num_classes=400)
    path = tmp_path / "mc3_18-a90a0ba3.pth"
    torch.save(kinetics, path)
    with caplog.at_level(logging.WARNING):
        info = load_checkpoint(model, path, arch)
    assert info.format == "torchvision"
    assert info.reinitialised == ("fc.bias", "fc.weight")
    assert "re-initialised" in caplog.text and "fc.weight" in caplog.text
    loaded = model.state_dict()
    assert torch.equal(loaded["layer3.1.conv2.0.weight"], kinetics["layer3.1.conv2.0.weight"])
    assert loaded["fc.weight"].shape == (1, 512)


def test_missing_and_unexpected_keys_are_listed(tmp_path: Path) -> None:
    state = _tiny(7).state_dict()
    del state["stages.1.conv2.0.weight"]
    state["stages.9.conv1.0.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(_tiny(8), path, TSM)
    message = str(caught.value)
    assert "1 missing keys: stages.1.conv2.0.weight" in message
    assert "1 unexpected keys: stages.9.conv1.0.weight" in message
    assert isinstance(caught.value, BundleError) and caught.value.exit_code == 4


def test_checkpoint_of_another_width_reports_wrong_shapes(tmp_path: Path) -> None:
    path = tmp_path / "wide.pt"
    torch.save(TSM.build(4, 32, {**OPTIONS, "widths": [16, 24]}).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"wrong shapes: .*\(24, 16, 3, 3\) vs \(16, 16, 3, 3\)"):
        load_checkpoint(_tiny(9), path, TSM)


def test_torchvision_weights_for_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "r3d.pth"
    torch.save(torchvision_state_dict("r3d_18"), path)
    with pytest.raises(CheckpointError, match="does not fit architecture 'expresso-tsm'"):
        load_checkpoint(_tiny(10), path, TSM)


class _Opaque:
    """Something only full unpickling could rebuild."""


def test_unsafe_pickles_and_missing_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save({"state_dict": _tiny(11).state_dict(), "trainer": _Opaque()}, path)
    with pytest.raises(CheckpointError, match="cannot be read as tensors only") as caught:
        read_checkpoint(path)
    assert "torch.save(model.state_dict()" in str(caught.value)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")
    torch.save({"epoch": 1}, path)
    with pytest.raises(CheckpointError, match="holds no tensors"):
        read_checkpoint(path)


def test_training_checkpoint_hints_are_read(tmp_path: Path) -> None:
    path = tmp_path / "trained.pt"
    hints = {"architecture": "expresso-tsm", "options": OPTIONS, "frames": 4, "size": 32, "metrics": {"mae": 5.0}}
    torch.save({**hints, "format": "expresso-train-1", "state_dict": _tiny(12).state_dict()}, path)
    raw = read_checkpoint(path)
    assert raw.hints == hints and raw.format == "expresso-train-1"


def test_best_prefix_prefers_the_prefix_matching_most_keys() -> None:
    expected = {"fc.weight", "fc.bias", "stem.0.weight"}
    assert best_prefix(["model.fc.weight", "model.fc.bias", "model.stem.0.weight", "fc.weight"], expected) == "model."
    assert best_prefix(["fc.weight", "fc.bias"], expected) == ""
    assert best_prefix(["other.thing"], expected) == ""
