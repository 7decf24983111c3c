"""Assemble a model bundle: model, checkpoint, FP32 ONNX, verification, MACs, manifest and model card.

``export_bundle`` is the whole chain behind ``python -m export onnx``. It builds in a hidden staging directory
beside ``out`` and moves it into place only when every step passed, so a failed export leaves nothing behind.
Without ``--arch`` (and without a training checkpoint's record of it) the architecture and its width options are
inferred from the checkpoint's keys and shapes. A checkpoint's model is scored on real windows before export and
refused when degenerate (:mod:`export.degenerate`). Layers left at random initialisation are listed in the
manifest (``model.weights.random_layers``, ``["*"]`` for an all-random model) and in the model card.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge import NOT_A_DIAGNOSTIC_DEVICE
from edge.bundle import MANIFEST_NAME, Bundle, load_bundle, write_manifest
from edge.errors import UsageError
from edge.layout import DEFAULT_FRAMES, DEFAULT_SIZE, default_input_section, default_regions_section
from edge.scale import BDI_II, NamedScale, Scale, manifest_outputs
from export.arch_fit import fit_of, infer_architecture, load_with_suggestion
from export.checkpoint import CheckpointError, CheckpointInfo, KeyRename, RawCheckpoint, read_checkpoint
from export.dataset import default_spec
from export.degenerate import OutputCheck, OutputCheckSource, check_output, torch_scorer
from export.macs import macs_of_onnx
from export.onnx_export import DEFAULT_OPSET, OUTPUT_NAME, Verification, onnx_from_model, verify_onnx
from export.zoo import DEFAULT_ARCHITECTURE, Architecture, get_architecture, named_outputs, scale_option

log = logging.getLogger(__name__)

MODEL_FILE = "model.fp32.onnx"
EXPORT_STEPS = ("build model", "load weights", "export ONNX", "verify in ONNX Runtime", "write manifest")
RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS: no checkpoint was given, so this bundle's scores are meaningless; use it only to test the "
    "pipeline, never to look at a person"
)
LIMITATIONS = (
    "Lighting: dim, back-lit or flickering scenes change facial appearance and degrade the estimate.",
    "Head pose: windows with large yaw, pitch or roll are out of the training distribution and skipped or degraded.",
    "Camera angle and distance: a camera far above, below or beside the face, or a face only a few dozen pixels "
    "wide, degrades the regions the model reads.",
    "Consent: run it only on people who agreed to be measured; nothing is processed before consent is recorded.",
    "Privacy: frames, crops and landmarks stay in memory; only aggregated, anonymized scores may leave the device.",
    "Fairness: errors are likely unequal across age, sex, skin tone, culture and facial differences, and across "
    "groups under-represented in the training data; check per-group error before any use.",
    "Facial behaviour is an indirect, noisy signal of depression severity; one window or one session says little.",
)


@dataclass(frozen=True)
class ExportResult:
    """What ``export_bundle`` made."""

    bundle: Bundle
    verification: Verification
    checkpoint: CheckpointInfo | None
    output_check: OutputCheck | None = None
    inferred: str | None = None
    """How the architecture was inferred from the checkpoint (None: given or recorded)."""


def weights_section(checkpoint: CheckpointInfo | None) -> dict[str, Any]:
    """The manifest's ``model.weights``: random, or the checkpoint's SHA-256 and format."""
    if checkpoint is None:
        return {
            "source": "random",
            "checkpoint_sha256": None,
            "checkpoint_format": None,
            "note": RANDOM_WEIGHTS_WARNING,
            "random_layers": ["*"],
        }
    note = f"loaded from {checkpoint.path.name}"
    if checkpoint.renamed:
        note += f" (keys renamed by {', '.join(checkpoint.renamed)})"
    if checkpoint.prefix:
        note += f" (key prefix {checkpoint.prefix!r} stripped)"
    if checkpoint.reinitialised:
        note += f"; {', '.join(checkpoint.reinitialised)} re-initialised (head of another shape): fine-tune first"
    return {
        "source": "checkpoint",
        "checkpoint_sha256": checkpoint.sha256,
        "checkpoint_format": checkpoint.format,
        "note": note,
        "random_layers": list(checkpoint.reinitialised),
    }


def random_layers_warning(layers: tuple[str, ...]) -> str:
    """The model card's line for layers a checkpoint left at random initialisation."""
    return (
        f"RANDOM LAYERS: {', '.join(layers)} did not come from the checkpoint (another shape) and hold random "
        "initial weights: its scores are meaningless until the model is fine-tuned"
    )


def model_card(
    *, random_weights: bool, training_data: str | None, random_layers: tuple[str, ...] = (), scale: Scale = BDI_II
) -> dict[str, Any]:
    """The manifest's ``model_card``: intended use, training data, limitations, not a diagnostic device."""
    if random_weights:
        data = "none: " + RANDOM_WEIGHTS_WARNING
    else:
        data = training_data or "not recorded; re-export with --training-data describing the checkpoint's data"
    warnings = [RANDOM_WEIGHTS_WARNING] if random_weights else []
    warnings += [random_layers_warning(random_layers)] if random_layers else []
    limitations = warnings + list(LIMITATIONS)
    return {
        "intended_use": "Research and screening aid: estimate depression-related facial behaviour on the "
        f"{scale.name} scale ({scale.low:g}-{scale.high:g}), aggregated over sessions, on the device. "
        + NOT_A_DIAGNOSTIC_DEVICE,
        "not_a_diagnostic_device": True,
        "training_data": data,
        "limitations": limitations,
    }


def build_manifest(
    *,
    name: str,
    architecture: Architecture,
    options: dict[str, Any],
    frames: int,
    size: int,
    checkpoint: CheckpointInfo | None,
    parameters: int,
    macs: int,
    opset: int,
    training_data: str | None = None,
) -> dict[str, Any]:
    """A manifest for a fresh FP32 bundle (``write_manifest`` adds hashes, sizes and format fields)."""
    return {
        "model": {
            "name": name,
            "version": "1",
            "architecture": architecture.name,
            "architecture_options": options,
            "weights": weights_section(checkpoint),
            "parameters": parameters,
            "macs_per_window": macs,
        },
        "input": default_input_section(layout=architecture.layout, frames=frames, size=size),
        "regions": default_regions_section(size),
        **manifest_outputs(named_outputs(options) or (NamedScale(OUTPUT_NAME, scale_option(options)),)),
        "artifacts": [{"path": MODEL_FILE, "kind": "onnx", "precision": "fp32", "target": "any", "opset": opset}],
        "calibration": None,
        "model_card": model_card(
            random_weights=checkpoint is None,
            training_data=training_data,
            random_layers=checkpoint.reinitialised if checkpoint else (),
            scale=scale_option(options),
        ),
    }


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def check_destination(out: Path, *, force: bool) -> None:
    """Refuse to write over anything but an empty directory or, with ``force``, an existing bundle."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if force and (out / MANIFEST_NAME).is_file():
        return
    raise UsageError(
        f"{out} exists and is not empty",
        fix="choose a new --out, or pass --force to replace a bundle there" if out.is_dir() else "choose a new --out",
    )


def move_into_place(staging: Path, out: Path) -> None:
    if out.is_dir() and (out / MANIFEST_NAME).is_file():
        shutil.rmtree(out)
    elif out.is_dir():
        out.rmdir()
    staging.rename(out)


def resolve_settings(
    arch: str | None, frames: int | None, size: int | None, options: dict[str, Any] | None, hints: dict[str, Any]
) -> tuple[str, int, int, dict[str, Any]]:
    """Architecture, frames, size and options: as given, else as the checkpoint records them, else the defaults."""
    hinted = hints.get("architecture")
    if arch is not None and hinted is not None and hinted != arch:
        raise CheckpointError(
            f"the checkpoint was trained as architecture {hinted!r}, not {arch!r}", fix=f"pass --arch {hinted}"
        )
    for label, given in (("frames", frames), ("size", size)):
        if given is not None and hints.get(label) not in (None, given):
            log.warning("checkpoint was trained with %s=%s; exporting with %s", label, hints[label], given)
    merged = {**(hints.get("options") or {}), **(options or {})}
    return (
        arch or hinted or DEFAULT_ARCHITECTURE,
        frames or int(hints.get("frames") or DEFAULT_FRAMES),
        size or int(hints.get("size") or DEFAULT_SIZE),
        merged,
    )


def resolve_architecture(
    arch: str | None, raw: RawCheckpoint | None, options: dict[str, Any]
) -> tuple[str | None, dict[str, Any], str | None]:
    """``arch`` as given or recorded, else inferred from the checkpoint's keys and shapes; width options not given
    (nor recorded) are read off the shapes too. Returns (architecture, options, how it was inferred)."""
    if raw is None or raw.hints.get("architecture") is not None:
        return arch, options, None
    if arch is not None:
        shapes = {k: tuple(v.shape) for k, v in raw.tensors.items()}
        return arch, {**fit_of(get_architecture(arch), shapes).options, **options}, None
    fit = infer_architecture(raw.tensors)
    if fit is None:
        return None, options, None  # the default; a misfit is refused naming any architecture that fits better
    log.info("architecture inferred from the checkpoint's keys and shapes: %s", fit.describe())
    return fit.architecture, {**fit.options, **options}, f"inferred from the checkpoint: {fit.describe()}"


def export_bundle(
    arch: str | None,
    out: str | Path,
    *,
    checkpoint: str | Path | None = None,
    frames: int | None = None,
    size: int | None = None,
    options: dict[str, Any] | None = None,
    opset: int = DEFAULT_OPSET,
    name: str | None = None,
    training_data: str | None = None,
    force: bool = False,
    verify_windows: int = 8,
    on_step: Callable[[str], None] | None = None,
    renames: tuple[KeyRename, ...] = (),
    head: str | None = None,
    check: OutputCheckSource | None = None,
) -> ExportResult:
    """Build architecture ``arch`` (weights from ``checkpoint`` or random), export, verify and write a bundle.

    ``None`` for ``arch``, ``frames``, ``size`` takes what the checkpoint records (or, for ``arch``, what its keys
    and shapes fit), else the defaults; ``options`` override the checkpoint's and ``head`` overrides both.
    ``renames`` fix the checkpoint's key names; ``check`` says where the degenerate-model check finds real windows
    (default: the sample videos). ``on_step`` is called with each name of ``EXPORT_STEPS`` as it starts.
    """
    step = on_step or (lambda _name: None)
    out = Path(out)
    check_destination(out, force=force)
    raw = read_checkpoint(checkpoint, renames) if checkpoint is not None else None
    arch, options, inferred = resolve_architecture(arch, raw, dict(options or {}))
    arch, frames, size, options = resolve_settings(arch, frames, size, options, raw.hints if raw else {})
    architecture = get_architecture(arch)
    resolved = architecture.options({**options, **({"head": head} if head else {})})
    step(EXPORT_STEPS[0])
    model = architecture.build(frames, size, resolved)
    step(EXPORT_STEPS[1])
    loaded = load_with_suggestion(model, raw, architecture) if raw is not None else None
    spec, tiles = default_spec(architecture.layout, frames=frames, size=size)
    output_check = None
    if loaded is None:
        log.warning(RANDOM_WEIGHTS_WARNING)
    else:
        source = check or OutputCheckSource()
        output_check = check_output(
            torch_scorer(model, spec),
            spec,
            tiles,
            resolved["head"],
            source,
            loaded.reinitialised,
            scale=scale_option(resolved),
            more=named_outputs(resolved)[1:],
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be copied to devices
    try:
        step(EXPORT_STEPS[2])
        onnx_path = onnx_from_model(model, spec, staging / MODEL_FILE, opset=opset)
        step(EXPORT_STEPS[3])
        verification = verify_onnx(
            onnx_path, model, spec, windows=verify_windows, output_span=scale_option(resolved).span
        )
        step(EXPORT_STEPS[4])
        manifest = build_manifest(
            name=name or f"{arch}-{'random' if loaded is None else loaded.path.stem}",
            architecture=architecture,
            options=resolved,
            frames=frames,
            size=size,
            checkpoint=loaded,
            parameters=sum(p.numel() for p in model.parameters()),
            macs=macs_of_onnx(onnx_path),
            opset=opset,
            training_data=training_data,
        )
        if output_check is not None:
            manifest["model"]["output_check"] = output_check.as_dict()
        metrics = raw.hints.get("metrics") if raw else None
        if isinstance(metrics, dict) and _is_json(metrics):
            manifest["model_card"]["metrics"] = metrics
        write_manifest(staging, manifest)
        move_into_place(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return ExportResult(load_bundle(out), verification, loaded, output_check, inferred)
