"""Fine-tune a zoo architecture on windows of labelled videos: checkpoints, per-epoch MAE/RMSE, per-group errors.

Windows come from :mod:`export.dataset` (the device's face pipeline and normalisation). Each epoch writes
``epoch_NNN.pt`` and, when validation MAE improves, ``best.pt``; ``report.json`` holds the per-epoch history and
the best epoch's validation errors broken down by every grouping column, beside the trivial baseline (always
predicting the training mean): unequal error across groups is a known failing of this field.
Training starts from random weights or, with ``TrainConfig.init``, from a checkpoint :mod:`export.checkpoint` reads
(plain state_dict, Lightning, torchvision/Kinetics weights; a head of another shape is re-initialised); its file
name and SHA-256 go into every checkpoint and the report, so a bundle's provenance says where training started.
Every epoch also appends a line to ``metrics.jsonl`` and rewrites ``last.pt`` (weights, optimiser, schedule and
random-generator states), from which ``resume`` carries on exactly where the run stopped; ``patience`` stops a
run whose validation MAE has not improved for that many epochs. A run whose best model does not beat the constant
baseline (the training mean) is flagged in the report and the log. Training uses a CUDA GPU when torch sees one.
A model of several outputs (option ``outputs``) learns every output at once: the primary output's labels in
``score``, each further one's in a column named after it, a missing label masked out of the loss and of that
output's errors (:func:`output_loss`); the best epoch is the primary output's best validation MAE, and the report
adds ``outputs``: each further output's errors on the windows that have its label.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from tqdm import tqdm

from edge.bundle.manifest import InputSpec
from edge.errors import UsageError
from edge.preprocess import batch_windows
from edge.scale import NamedScale
from export.arch_fit import load_with_suggestion
from export.checkpoint import CheckpointInfo, read_checkpoint
from export.dataset import WindowSet
from export.zoo import get_architecture, named_outputs, scale_option

LOG = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "expresso-edge-checkpoint"
RESUME_FILE = "last.pt"
METRICS_LOG = "metrics.jsonl"
_ROW_KEYS = (("val_mae", "mae"), ("val_rmse", "rmse"), ("baseline_mae", "baseline_mae"), ("train_mean", "train_mean"))
"""A further output's figures in an epoch's row (``metrics.jsonl``, ``history``) and where its report has them."""
_MUST_MATCH_TO_RESUME = ("architecture", "options", "frames", "size", "epochs", "batch_size", "learning_rate")


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how."""

    out: Path
    architecture: str = "expresso-tsm"
    options: dict[str, Any] = field(default_factory=dict)
    frames: int = 16
    size: int = 112
    epochs: int = 8
    batch_size: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    augment: bool = True
    seed: int = 0
    init: Path | None = None
    """Checkpoint to fine-tune from (None: random initialisation)."""
    patience: int | None = None
    """Stop after this many epochs without a better validation MAE (None: run every epoch)."""
    resume: bool = False
    """Carry on from ``out/last.pt`` of an interrupted run with the same settings."""
    device: str = "auto"
    """``auto`` (a CUDA GPU when torch sees one, else the CPU), ``cpu`` or ``cuda[:N]``."""


def select_device(requested: str = "auto") -> torch.device:
    """The torch device to train on; asking for CUDA where torch sees none is refused."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise UsageError(f"--device {requested!r} is not a torch device", fix="pass auto, cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device {requested}: torch {torch.__version__} sees no CUDA GPU here",
            fix="pass --device auto or cpu, or install a CUDA build of torch",
        )
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def augment(windows: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Photometric jitter per window (channel gains, offset, a left-right light gradient): never geometric,
    so the mosaic's tiles keep their meaning."""
    count, _, _, width, _ = windows.shape
    gain = rng.uniform(0.7, 1.3, (count, 1, 1, 1, 1)) * rng.uniform(0.9, 1.1, (count, 1, 1, 1, 3))
    ramp = 1.0 + rng.uniform(-0.4, 0.4, (count, 1, 1, 1, 1)) * np.linspace(-1, 1, width)[None, None, None, :, None]
    offset = rng.uniform(-20.0, 20.0, (count, 1, 1, 1, 1))
    out = windows.astype(np.float32) * (gain * ramp).astype(np.float32) + offset.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def start_model(config: TrainConfig) -> tuple[nn.Module, CheckpointInfo | None]:
    """Seed everything, build the architecture and load ``config.init`` into it (a misfit raises CheckpointError;
    a head of another shape, such as one output's for a model of two, is re-initialised and listed)."""
    seed_everything(config.seed)
    architecture = get_architecture(config.architecture)
    model = architecture.build(config.frames, config.size, config.options)
    if config.init is None:
        return model, None
    return model, load_with_suggestion(model, read_checkpoint(config.init), architecture)


def init_record(info: CheckpointInfo | None) -> dict[str, Any] | None:
    """Where training started, for checkpoints and the report: file name, SHA-256, format, re-initialised keys."""
    if info is None:
        return None
    return {
        "file": info.path.name,
        "sha256": info.sha256,
        "format": info.format,
        "prefix": info.prefix,
        "reinitialised": list(info.reinitialised),
    }


def predict(
    model: nn.Module, data: WindowSet, spec: InputSpec, batch_size: int = 32, device: torch.device | None = None
) -> npt.NDArray[np.float32]:
    """The model's severity for every window of ``data``: ``(N,)``, or ``(N, K)`` for a model of K outputs."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            batch = torch.from_numpy(batch_windows(list(data.windows[start : start + batch_size]), spec))
            out.append(model(batch.to(device or "cpu")).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def _errors(errors: npt.NDArray[np.float64]) -> dict[str, float]:
    return {
        "mae": float(np.mean(np.abs(errors))),
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "bias": float(np.mean(errors)),
    }


def error_report(predictions: npt.NDArray[np.float32], data: WindowSet, train_mean: float) -> dict[str, Any]:
    """Window- and video-level MAE/RMSE beside the train-mean baseline, and errors per value of each group;
    ``predictions`` holds one score per window ``(N,)``."""
    if predictions.shape != data.scores.shape:
        # an (N, 1) column against (N,) labels would broadcast to (N, N) and report every pair's error
        raise ValueError(f"one prediction per window expected {data.scores.shape}, got {predictions.shape}")
    truth = data.scores.astype(np.float64)
    errors = predictions.astype(np.float64) - truth
    videos = np.unique(data.video_index)
    per_video = np.array([predictions[data.video_index == v].mean() for v in videos], dtype=np.float64)
    video_truth = np.array([data.videos[v].score for v in videos], dtype=np.float64)
    by_group: dict[str, dict[str, dict[str, float]]] = {}
    for column in data.group_columns:
        values = np.asarray(data.group_values(column))
        by_group[column] = {}
        for value in sorted(set(values.tolist())):
            mask = values == value
            entry = _errors(errors[mask])
            entry["baseline_mae"] = float(np.mean(np.abs(train_mean - truth[mask])))
            entry["windows"] = int(mask.sum())
            entry["videos"] = len(set(data.video_index[mask].tolist()))
            by_group[column][str(value)] = entry
    maes = {c: [g["mae"] for g in groups.values()] for c, groups in by_group.items()}
    return {
        "windows": len(data),
        "videos": len(videos),
        **_errors(errors),
        "baseline_mae": float(np.mean(np.abs(train_mean - truth))),
        "baseline_rmse": float(np.sqrt(np.mean((train_mean - truth) ** 2))),
        "video_level": {
            **_errors(per_video - video_truth),
            "baseline_mae": float(np.mean(np.abs(train_mean - video_truth))),
        },
        "train_mean": train_mean,
        "by_group": by_group,
        "group_mae_gap": {c: float(max(v) - min(v)) for c, v in maes.items() if v},
    }


def further_outputs(options: dict[str, Any]) -> tuple[NamedScale, ...]:
    """The outputs after the primary one the options name (none for a model of one output)."""
    return named_outputs(options)[1:]


def output_spans(options: dict[str, Any]) -> tuple[float, ...]:
    """Each output's scale span, primary first (one entry for a model of one output)."""
    return tuple(o.scale.span for o in named_outputs(options)) or (scale_option(options).span,)


def output_loss(prediction: torch.Tensor, target: torch.Tensor, spans: Sequence[float]) -> torch.Tensor:
    """Per output, the MSE on scores divided by that output's scale span over the rows that have its label (NaN in
    ``target``: none, contributing nothing), averaged over the outputs with a label in the batch: every output
    weighs the same whatever its scale, so one learning rate suits every scale mix. ``prediction`` and ``target``
    are ``(N, K)``, or ``(N,)`` for one output."""
    prediction, target = prediction.reshape(len(prediction), -1), target.reshape(len(target), -1)
    present = ~torch.isnan(target)
    span = torch.as_tensor(spans, dtype=prediction.dtype, device=prediction.device)
    squared = torch.where(present, ((prediction - target.nan_to_num()) / span) ** 2, 0.0)
    counts = present.sum(dim=0)
    per_output = squared.sum(dim=0) / counts.clamp(min=1)
    return per_output[counts > 0].mean()


def training_means(data: WindowSet, further: Sequence[NamedScale]) -> dict[str, float]:
    """Each further output's mean label over the training windows that have one (its baseline); an output no
    training video has a label for is refused."""
    labels = data.label_matrix([o.name for o in further])[:, 1:]
    unlabelled = [o.name for o, column in zip(further, labels.T, strict=True) if not np.isfinite(column).any()]
    if unlabelled:
        raise UsageError(
            f"no training window's video has a label for output(s) {', '.join(unlabelled)}",
            fix="fill those columns for some training videos, or train without those outputs",
        )
    return {o.name: float(np.nanmean(column)) for o, column in zip(further, labels.T, strict=True)}


def further_reports(
    predictions: npt.NDArray[np.float32], data: WindowSet, further: Sequence[NamedScale], means: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """:func:`error_report` of every further output (``predictions`` ``(N, K)``, primary first) on the windows
    whose video has its label, against its own training mean."""
    reports: dict[str, dict[str, Any]] = {}
    for column, output in enumerate(further, start=1):
        labelled, mask = data.for_output(output.name)
        scale = {"units": output.scale.name, "range": [output.scale.low, output.scale.high]}
        if not mask.any():
            reports[output.name] = {**scale, "windows": 0, "mae": None, "train_mean": means[output.name],
                                    "reason": f"no validation window's video has a {output.name} label"}  # fmt: skip
            continue
        report = error_report(predictions[mask, column], labelled, means[output.name])
        reports[output.name] = {**scale, **report, "beats_baseline": bool(report["mae"] < report["baseline_mae"])}
    return reports


def save_checkpoint(
    path: Path,
    model: nn.Module,
    config: TrainConfig,
    epoch: int,
    metrics: dict[str, Any],
    init: dict[str, Any] | None = None,
) -> None:
    """A checkpoint ``python -m export onnx --checkpoint`` reads: the state_dict, how to rebuild the model and
    the checkpoint training started from (``init``, None for random weights)."""
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "architecture": config.architecture,
            "options": get_architecture(config.architecture).options(config.options),
            "frames": config.frames,
            "size": config.size,
            "epoch": epoch,
            "metrics": metrics,
            "init": init,
            "state_dict": model.state_dict(),
        },
        path,
    )


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    data: WindowSet,
    spec: InputSpec,
    config: TrainConfig,
    generator: torch.Generator,
    rng: np.random.Generator,
    epoch: int,
    device: torch.device | None = None,
) -> float:
    """One pass over ``data`` in a seeded random order; returns the primary output's mean training MAE (points of
    its scale); the loss is :func:`output_loss`, so one learning rate suits every scale."""
    spans = output_spans(config.options)
    labels = data.label_matrix([o.name for o in further_outputs(config.options)])
    model.train()
    order = torch.randperm(len(data), generator=generator).numpy()
    total, seen = 0.0, 0
    bar = tqdm(range(0, len(order), config.batch_size), desc=f"epoch {epoch}/{config.epochs}", unit="batch")
    for start in bar:
        index = np.sort(order[start : start + config.batch_size])
        windows = augment(data.windows[index], rng) if config.augment else data.windows[index]
        inputs = torch.from_numpy(batch_windows(list(windows), spec)).to(device or "cpu")
        target = torch.from_numpy(labels[index]).to(device or "cpu")
        prediction = model(inputs).reshape(len(index), -1)
        loss = output_loss(prediction, target, spans)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += float((prediction.detach()[:, 0] - target[:, 0]).abs().sum())
        seen += len(index)
        bar.set_postfix(mae=f"{total / seen:.2f}")
    return total / max(seen, 1)


def save_resume_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``last.pt`` atomically (a crash mid-write leaves the previous one)."""
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)


def load_resume_state(config: TrainConfig) -> dict[str, Any]:
    """The state an interrupted run left in ``out/last.pt``; refused when missing or from other settings."""
    path = config.out / RESUME_FILE
    if not path.is_file():
        raise UsageError(f"--resume: {path} does not exist", fix="drop --resume to start afresh, or fix --out")
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    mine = json.loads(json.dumps(asdict(config), default=str))
    changed = [key for key in _MUST_MATCH_TO_RESUME if state["config"].get(key) != mine[key]]
    if changed:
        then = ", ".join(f"{key}={state['config'].get(key)!r}" for key in changed)
        raise UsageError(f"--resume: {path} was written with {then}", fix="resume with the same settings")
    return state


def train(
    config: TrainConfig,
    train_set: WindowSet,
    val_set: WindowSet,
    spec: InputSpec,
    start: tuple[nn.Module, CheckpointInfo | None] | None = None,
) -> dict[str, Any]:
    """Train, validate every epoch, write checkpoints and ``report.json`` into ``config.out``; returns the report.

    ``start`` is what :func:`start_model` returned (the command loads the checkpoint before cutting windows, so a
    wrong one fails fast); by default it is made here.
    """
    model, loaded = start if start is not None else start_model(config)
    init = init_record(loaded)
    device = select_device(config.device)
    seed_everything(config.seed)  # again: whatever ran since the model was built must not shift training's draws
    generator = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    config.out.mkdir(parents=True, exist_ok=True)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(train_set) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.learning_rate, total_steps=steps, pct_start=0.15)
    train_mean = float(train_set.scores.mean())
    further = further_outputs(config.options)
    means = training_means(train_set, further)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    first, stale = 1, 0
    if config.resume:
        state = load_resume_state(config)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        rng.bit_generator.state = state["rng"]
        history, best, stale, first = state["history"], state["best"], state["stale"], state["epoch"] + 1
        LOG.info("resuming %s after epoch %d", config.out, state["epoch"])
    else:
        (config.out / METRICS_LOG).unlink(missing_ok=True)  # a fresh run starts a fresh log
    stopped_early = None
    plain_config = json.loads(json.dumps(asdict(config), default=str))  # paths as text: readable as weights only
    for epoch in range(first, config.epochs + 1):
        started = time.perf_counter()
        train_mae = train_epoch(model, optimizer, scheduler, train_set, spec, config, generator, rng, epoch, device)
        predictions = predict(model, val_set, spec, device=device).reshape(len(val_set), -1)
        report = error_report(predictions[:, 0], val_set, train_mean)
        others = further_reports(predictions, val_set, further, means)
        row = {"epoch": epoch, "train_mae": train_mae, "val_mae": report["mae"], "val_rmse": report["rmse"],
               "baseline_mae": report["baseline_mae"], "train_mean": train_mean}  # fmt: skip
        if others:
            row["outputs"] = {name: {key: o.get(source) for key, source in _ROW_KEYS} for name, o in others.items()}
        history.append(row)
        LOG.info("epoch %d: train MAE %.2f, val MAE %.2f, RMSE %.2f%s", epoch, train_mae, report["mae"],
                 report["rmse"], _further_maes(others))  # fmt: skip
        save_checkpoint(config.out / f"epoch_{epoch:03d}.pt", model, config, epoch, row, init)
        stale += 1
        if best is None or report["mae"] < best["mae"]:
            best, stale = {**report, "epoch": epoch, "outputs": others}, 0
            save_checkpoint(config.out / "best.pt", model, config, epoch, row, init)
        log_row = {**row, "lr": scheduler.get_last_lr()[0], "seconds": time.perf_counter() - started,
                   "device": str(device)}  # fmt: skip
        with (config.out / METRICS_LOG).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(log_row) + "\n")
        save_resume_state(config.out / RESUME_FILE, {
            "config": plain_config, "epoch": epoch, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(), "rng": rng.bit_generator.state,
            "history": history, "best": best, "stale": stale,
        })  # fmt: skip
        if config.patience is not None and stale >= config.patience:
            stopped_early = epoch
            LOG.info("stopping after epoch %d: no better validation MAE for %d epochs", epoch, stale)
            break
    if best is None:
        raise UsageError(f"--resume: {config.out} already ran all {config.epochs} epochs", fix="raise --epochs")
    beats = bool(best["mae"] < best["baseline_mae"])
    if not beats:
        LOG.warning(
            "the best model (val MAE %.2f) does NOT beat always predicting the training mean %.1f (MAE %.2f)",
            best["mae"], train_mean, best["baseline_mae"],
        )  # fmt: skip
    for name, other in best.get("outputs", {}).items():
        if other["mae"] is not None and not other["beats_baseline"]:
            LOG.warning(
                "output %s: the best model (val MAE %.2f) does NOT beat always predicting its training mean %.1f "
                "(MAE %.2f)", name, other["mae"], other["train_mean"], other["baseline_mae"],
            )  # fmt: skip
    result = {
        "config": {**asdict(config), "out": str(config.out), "init": str(config.init) if config.init else None},
        "init": init,
        "device": str(device),
        "train": {"windows": len(train_set), "videos": len(train_set.videos), "rejected": train_set.rejected},
        "history": history,
        "best_epoch": best["epoch"],
        "stopped_early": stopped_early,
        "beats_baseline": beats,
        "validation": {key: value for key, value in best.items() if key != "outputs"},
        "outputs": best.get("outputs", {}),
        "checkpoint": str(config.out / "best.pt"),
        "metrics_log": str(config.out / METRICS_LOG),
    }
    (config.out / "report.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _further_maes(reports: dict[str, dict[str, Any]]) -> str:
    """``; phq9 val MAE 2.31`` per further output, for the epoch's log line."""
    return "".join(
        f"; {name} val MAE {report['mae']:.2f}" if report["mae"] is not None else f"; {name}: no labelled window"
        for name, report in reports.items()
    )
