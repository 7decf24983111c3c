"""Model intake: heads told not guessed, degenerate models refused, --arch inferred, keys renamed, clean refusals."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision_spec import torchvision_state_dict

from edge.bundle import load_bundle
from export.arch_fit import infer_architecture, rank_fits
from export.bundle_build import export_bundle
from export.checkpoint import CheckpointError, KeyRename, read_checkpoint
from export.degenerate import DegenerateModelError, OutputCheckSource, check_scores
from export.zoo import get_architecture

TSM = get_architecture("expresso-tsm")
OPTIONS = {"stem": 8, "widths": [8, 16], "blocks": [1, 2]}
FRAMES, SIZE = 16, 16


def linear_head_checkpoint(path: Path, level: float = 30.0) -> torch.nn.Module:
    """A model trained as a plain regression on raw scores: its fc outputs about ``level`` for any input."""
    torch.manual_seed(0)
    model = TSM.build(FRAMES, SIZE, {**OPTIONS, "head": "linear"})
    with torch.no_grad():
        model.fc.bias.fill_(level)
        model.fc.weight.mul_(10.0)  # a trained head spreads its scores; a fresh one's tiny weights would not
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}, path)
    return model


def test_a_linear_head_exported_as_sigmoid_is_refused_with_the_figures_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "linear.ckpt"
    linear_head_checkpoint(path)
    with pytest.raises(DegenerateModelError) as caught:
        export_bundle(None, tmp_path / "bad", checkpoint=path, frames=FRAMES, size=SIZE)
    message = str(caught.value)
    assert "pinned ceiling" in message and "100% at its ceiling" in message and "pass --head linear" in message
    assert caught.value.exit_code == 4 and not (tmp_path / "bad").exists()


def test_the_same_checkpoint_with_head_linear_exports_unclipped_scores_and_records_the_head(tmp_path: Path) -> None:
    path = tmp_path / "linear.ckpt"
    linear_head_checkpoint(path, level=30.0)
    result = export_bundle(None, tmp_path / "good", checkpoint=path, frames=FRAMES, size=SIZE, head="linear")
    manifest = result.bundle.manifest
    assert manifest["model"]["architecture_options"]["head"] == "linear"
    assert result.inferred and "expresso-tsm" in result.inferred  # no --arch: the keys and shapes told it
    assert manifest["model"]["architecture_options"]["widths"] == [8, 16]
    assert manifest["model"]["architecture_options"]["blocks"] == [1, 2]
    check = manifest["model"]["output_check"]
    assert check["verdict"] == "ok" and 20.0 < check["mean"] < 40.0  # around the raw 30, not pinned at 63
    assert manifest["model"]["weights"]["random_layers"] == []


def test_linear_head_clips_to_the_range_only_in_eval() -> None:
    model = TSM.build(FRAMES, SIZE, {**OPTIONS, "head": "linear"})
    with torch.no_grad():
        model.fc.bias.fill_(100.0)
    window = torch.zeros(1, FRAMES, 3, SIZE, SIZE)
    with torch.no_grad():
        assert float(model.eval()(window)[0]) == 63.0
        assert float(model.train()(window)[0]) > 63.0  # training sees the raw value, so gradients do not vanish
    with pytest.raises(Exception, match="unknown head 'tanh'"):
        TSM.options({"head": "tanh"})


def test_reinitialised_kinetics_head_is_listed_in_the_manifest_and_the_card(tmp_path: Path) -> None:
    path = tmp_path / "mc3_18-kinetics.pth"
    torch.save(torchvision_state_dict("mc3_18", num_classes=400), path)
    with pytest.raises(DegenerateModelError, match=r"fc\.bias, fc\.weight hold random weights .*fine-tune first"):
        export_bundle("mc3_18", tmp_path / "b", checkpoint=path, frames=4, size=32)
    allowed = OutputCheckSource(allow_degenerate=True)
    result = export_bundle(
        "mc3_18", tmp_path / "b", checkpoint=path, frames=4, size=32, verify_windows=2, check=allowed
    )
    manifest = load_bundle(tmp_path / "b").manifest  # validated against the schema on load
    assert manifest["model"]["weights"]["random_layers"] == ["fc.bias", "fc.weight"]
    assert any(line.startswith("RANDOM LAYERS: fc.bias, fc.weight") for line in manifest["model_card"]["limitations"])
    assert result.output_check is not None and result.output_check.verdict == "constant"


def test_degenerate_verdicts_on_hand_built_scores() -> None:
    varied = np.linspace(10, 40, 12)
    assert check_scores(varied, 0, 63, "t").verdict == "ok"
    assert check_scores(np.full(12, 31.5), 0, 63, "t").verdict == "constant"
    assert check_scores(np.r_[np.full(11, 63.0), 40.0], 0, 63, "t").verdict == "pinned_ceiling"
    assert check_scores(np.full(12, 0.1), 0, 63, "t").verdict == "pinned_floor"


def test_allow_degenerate_exports_and_records_the_verdict(tmp_path: Path) -> None:
    path = tmp_path / "linear.ckpt"
    linear_head_checkpoint(path)
    with pytest.raises(DegenerateModelError):
        export_bundle("expresso-tsm", tmp_path / "b", checkpoint=path, frames=FRAMES, size=SIZE)
    allowed = OutputCheckSource(allow_degenerate=True)
    result = export_bundle("expresso-tsm", tmp_path / "b", checkpoint=path, frames=FRAMES, size=SIZE, check=allowed)
    assert result.bundle.manifest["model"]["output_check"]["verdict"] == "pinned_ceiling"


@pytest.mark.parametrize("name", ["r3d_18", "mc3_18", "r2plus1d_18"])
def test_arch_is_inferred_from_torchvision_weights(name: str) -> None:
    fit = infer_architecture(torchvision_state_dict(name, num_classes=400))
    assert fit is not None and fit.architecture == name and fit.score == 1.0


def test_a_misfit_names_the_architecture_the_weights_fit_better(tmp_path: Path) -> None:
    path = tmp_path / "r3d.pth"
    torch.save(torchvision_state_dict("r3d_18"), path)
    with pytest.raises(CheckpointError, match=r"fit r3d_18 \(102/102 keys\) better.*pass --arch r3d_18"):
        export_bundle("mc3_18", tmp_path / "b", checkpoint=path, frames=4, size=32)
    assert rank_fits({"fc.weight": torch.zeros(1, 2)})[0].score < 0.1


def test_rename_keys_fixes_a_near_miss_layout(tmp_path: Path) -> None:
    source = TSM.build(FRAMES, SIZE, OPTIONS)
    state = {k.replace("fc.", "fc.1."): v for k, v in source.state_dict().items()}
    path = tmp_path / "nearmiss.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"unexpected keys: fc\.1\.bias"):
        export_bundle("expresso-tsm", tmp_path / "b", checkpoint=path, frames=FRAMES, size=SIZE, options=OPTIONS)
    for rule in ("fc.1.=fc.", r"re:^fc\.1\.=fc."):
        raw = read_checkpoint(path, (KeyRename.parse(rule),))
        assert "fc.weight" in raw.tensors and "fc.1.weight" not in raw.tensors and raw.renamed == (rule,)
    result = export_bundle(
        "expresso-tsm", tmp_path / "b", checkpoint=path, frames=FRAMES, size=SIZE, options=OPTIONS,
        renames=(KeyRename.parse("fc.1.=fc."),), check=None,
    )  # fmt: skip
    assert "renamed by fc.1.=fc." in result.bundle.manifest["model"]["weights"]["note"]
    with pytest.raises(CheckpointError, match="matches no key"):
        read_checkpoint(path, (KeyRename.parse("head.=fc."),))
    with pytest.raises(CheckpointError, match="is not OLD=NEW"):
        KeyRename.parse("fc.1.")


class Namespace(argparse.Namespace):
    """Hyper-parameters the way Lightning pickles them."""


def test_pickled_and_onnx_checkpoints_get_one_clean_line(tmp_path: Path) -> None:
    pickled = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": TSM.build(FRAMES, SIZE, OPTIONS).state_dict(), "hparams": Namespace(lr=1)}, pickled)
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(pickled)
    message = str(caught.value)
    assert "\x1b" not in message and "\n" not in message and "WeightsUnpickler" not in message
    assert "Namespace" in message and "weights_only=False" in message  # the class, and the trusted-session fix
    model = tmp_path / "model.onnx"
    with pytest.warns(DeprecationWarning):
        torch.onnx.export(torch.nn.Linear(2, 1), (torch.zeros(1, 2),), str(model), dynamo=False)
    with pytest.raises(CheckpointError, match=r"is an ONNX model, not a PyTorch checkpoint.*import-onnx"):
        read_checkpoint(model)
    renamed = model.rename(tmp_path / "model.pt")  # told apart by its content, not only its name
    with pytest.raises(CheckpointError, match=r"is an ONNX model, not a PyTorch checkpoint"):
        read_checkpoint(renamed)


TWO = ["bdi_ii:bdi-ii", "phq9:phq-9"]


def test_a_zoo_head_of_two_outputs_clips_each_to_its_range_and_exports_a_bundle_of_both(tmp_path: Path) -> None:
    from edge.backends import create
    from edge.preprocess import batch_windows
    from export.onnx_export import random_windows
    from export.train import TrainConfig, start_model

    model = TSM.build(FRAMES, SIZE, {**OPTIONS, "head": "linear", "outputs": TWO})
    window = torch.zeros(1, FRAMES, 3, SIZE, SIZE)
    with torch.no_grad():
        model.fc.bias.copy_(torch.tensor([100.0, 100.0]))
        assert model.eval()(window).tolist() == [[63.0, 27.0]]  # each column clipped to its own scale
        model.fc.bias.copy_(torch.tensor([30.0, 12.0]))
        model.fc.weight.mul_(10.0)
        model.fc.weight[1] = 0.4 * model.fc.weight[0]  # the PHQ-9 head: 0.4 times the BDI-II one, on 0-27
    torch.save({"state_dict": model.state_dict()}, tmp_path / "two.ckpt")
    options = {**OPTIONS, "outputs": TWO}
    result = export_bundle("expresso-tsm", tmp_path / "b", checkpoint=tmp_path / "two.ckpt", frames=FRAMES,
                           size=SIZE, head="linear", options=options)  # fmt: skip
    bundle = load_bundle(tmp_path / "b")
    assert [(o.name, o.scale.name) for o in bundle.outputs] == [("bdi_ii", "BDI-II"), ("phq9", "PHQ-9")]
    check = bundle.manifest["model"]["output_check"]
    assert check["verdict"] == "ok" and check["others"] == {"phq9": "ok"} and result.bundle.scale.name == "BDI-II"
    with create("onnxruntime", bundle) as backend:
        batch = batch_windows(random_windows(bundle.input, 3, np.random.default_rng(0)), bundle.input)
        scores = backend.infer_outputs(batch)
    assert scores.shape == (3, 2) and abs(float(scores[:, 1].mean()) - 12.0) < 5.0  # the PHQ-9 head's column
    trainable, _ = start_model(TrainConfig(out=tmp_path / "run", options=options, frames=FRAMES, size=SIZE))
    assert trainable.fc.weight.shape[0] == 2  # trained as such: tests/export/test_train_outputs.py
    with pytest.raises(Exception, match="'phq9' is not NAME:SCALE"):
        TSM.options({"outputs": ["phq9"]})


def test_explanations_take_one_chosen_output_of_a_head_of_several() -> None:
    from export.explain.model import output_column

    single = TSM.build(FRAMES, SIZE, OPTIONS)
    assert output_column(single) is single
    two = TSM.build(FRAMES, SIZE, {**OPTIONS, "outputs": TWO})
    window = torch.rand(2, FRAMES, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(output_column(two)(window), two(window)[:, 0])
        assert torch.equal(output_column(two, 1)(window), two(window)[:, 1])
