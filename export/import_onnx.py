"""Open intake: an ONNX model trained anywhere becomes a bundle that calibrate, bench, engine and the daemon run.

What the graph cannot say is given as options or in a small TOML file (options win)::

    layout = "NCTHW"          # or NTCHW; default: read off the input shape (which axis holds the 3 channels)
    frames = 16               # default: the input's static frame axis, else 16
    size = 112                # mosaic side; default: the input's static height (= width), else 112
    sample_fps = 8.0
    window_stride = 8         # default: frames / 2
    [normalization]           # pixel * scale, then (x - mean) / std per RGB channel
    scale = 0.00392156862745098
    mean = [0.485, 0.456, 0.406]
    std = [0.229, 0.224, 0.225]
    [[tiles]]                 # the region mosaic the model was trained on; default: the zoo's, scaled to size
    region = "mouth"
    x = 0
    y = 0
    width = 112
    height = 112

The file is checked with ``onnx.checker`` (full check), its one input must be rank 5 with a dynamic batch axis and
fit the layout, and ONNX Runtime must give one score per window and output on a batch of two: a model of K
named outputs (``outputs``) has one output tensor of shape ``(N, K)``, its columns in the order the outputs are
named (the device's backends read it so; ``docs/model-intake.md``). Then the model is scored on
real windows like a checkpoint (:mod:`export.degenerate`), and the manifest and model card are written with the
ONNX file's SHA-256 as its weights' identity.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from edge.bundle import Bundle, InputSpec, Tile, load_bundle, sha256_of, write_manifest
from edge.errors import BundleError, ConfigError
from edge.layout import (
    DEFAULT_FRAMES,
    DEFAULT_NORMALIZATION,
    DEFAULT_SAMPLE_FPS,
    DEFAULT_SIZE,
    default_input_section,
    default_regions_section,
)
from edge.scale import BDI_II, NamedScale, Scale, manifest_outputs
from export.bundle_build import MODEL_FILE, check_destination, model_card, move_into_place
from export.degenerate import OutputCheck, OutputCheckSource, Scorer, check_output
from export.macs import macs_of_onnx
from export.onnx_export import random_windows

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ARCHITECTURE = "imported-onnx"
HEAD = "onnx"
"""What the degenerate check's likely-cause text calls a head it cannot change."""
_TYPES: dict[str, type | tuple[type, ...]] = {
    "layout": str, "frames": int, "size": int, "sample_fps": (int, float), "window_stride": int,
    "normalization": dict, "tiles": list,
}  # fmt: skip
_KEYS = set(_TYPES)
_NORMALIZATION_KEYS = {"scale", "mean", "std"}


class OnnxIntakeError(BundleError):
    """An ONNX file cannot become a bundle as it is."""


@dataclass(frozen=True)
class IntakeSpec:
    """How to feed the model: what the graph does not say. ``None``: read off the graph, else the default."""

    layout: str | None = None
    frames: int | None = None
    size: int | None = None
    sample_fps: float | None = None
    window_stride: int | None = None
    normalization: dict[str, Any] = field(default_factory=dict)
    tiles: tuple[dict[str, Any], ...] | None = None

    @classmethod
    def from_toml(cls, path: Path) -> IntakeSpec:
        """Read an intake file; unknown keys and unreadable TOML are refused naming the key or the line."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(
                f"intake file {path}: {exc}", fix="fix the TOML (python -m export import-onnx --help)"
            ) from exc
        unknown = sorted(set(data) - _KEYS) + sorted(
            f"normalization.{k}" for k in set(data.get("normalization") or {}) - _NORMALIZATION_KEYS
        )
        if unknown:
            raise ConfigError(f"intake file {path}: unknown key(s) {', '.join(unknown)}", fix=f"use {sorted(_KEYS)}")
        wrong = [
            f"{key} = {data[key]!r}"
            for key, kind in _TYPES.items()
            if key in data and (not isinstance(data[key], kind) or isinstance(data[key], bool))
        ]
        if wrong:
            raise ConfigError(
                f"intake file {path}: wrong type for {', '.join(wrong)}",
                fix="layout is text, frames/size/window_stride integers, sample_fps a number",
            )
        tiles = data.get("tiles")
        return cls(
            data.get("layout"), data.get("frames"), data.get("size"), data.get("sample_fps"),
            data.get("window_stride"), dict(data.get("normalization") or {}),
            tuple(tiles) if tiles is not None else None,
        )  # fmt: skip

    def merged(self, overrides: IntakeSpec) -> IntakeSpec:
        """This spec with every value ``overrides`` sets taking its place."""
        changes = {k: v for k, v in vars(overrides).items() if v not in (None, {})}
        if overrides.normalization:
            changes["normalization"] = {**self.normalization, **overrides.normalization}
        return replace(self, **changes)


def _dims(value_info: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _refuse(path: Path, problem: str, fix: str) -> OnnxIntakeError:
    return OnnxIntakeError(f"ONNX model {path}: {problem}", fix=fix)


def input_section(path: Path, model: onnx.ModelProto, spec: IntakeSpec) -> dict[str, Any]:
    """The manifest's ``input`` for the model's one input, from its shape and ``spec``; misfits refused."""
    initialisers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initialisers]
    if len(inputs) != 1:
        raise _refuse(path, f"has {len(inputs)} inputs; a bundle feeds exactly one", "export it with one input")
    dims = _dims(inputs[0])
    if len(dims) != 5:
        raise _refuse(path, f"input {inputs[0].name!r} has rank {len(dims)}, not 5 (N,T,C,H,W or N,C,T,H,W)",
                      "export the model on a batch of windows of frames")  # fmt: skip
    if dims[0] is not None and dims[0] != 0:
        raise _refuse(path, f"input {inputs[0].name!r} has a fixed batch of {dims[0]}; the device scores several "
                      "windows at once", "re-export with a dynamic batch axis, e.g. torch.onnx.export(..., "
                      "dynamic_axes={'INPUT': {0: 'batch'}, 'OUTPUT': {0: 'batch'}})")  # fmt: skip
    layout = spec.layout or ("NCTHW" if dims[1] == 3 and dims[2] != 3 else "NTCHW" if dims[2] == 3 else None)
    if layout not in ("NTCHW", "NCTHW"):
        raise _refuse(path, f"cannot tell the layout of input shape {dims}", "pass --layout NTCHW or NCTHW")
    channels, time = (dims[2], dims[1]) if layout == "NTCHW" else (dims[1], dims[2])
    frames = spec.frames or time or DEFAULT_FRAMES
    size = spec.size or dims[3] or DEFAULT_SIZE
    wanted = {"channels": (channels, 3), "frames": (time, frames), "height": (dims[3], size), "width": (dims[4], size)}
    wrong = [f"{name} {have} (wants {want})" for name, (have, want) in wanted.items() if have not in (None, want)]
    if wrong:
        raise _refuse(path, f"input shape {dims} in layout {layout} does not fit: {', '.join(wrong)}",
                      "pass --layout, --frames and --size matching the model's input")  # fmt: skip
    section = default_input_section(layout=layout, frames=frames, size=size)
    section["name"] = inputs[0].name
    section["sample_fps"] = float(spec.sample_fps or DEFAULT_SAMPLE_FPS)
    section["window_stride"] = int(spec.window_stride or section["window_stride"])
    section["normalization"] = {**DEFAULT_NORMALIZATION, **spec.normalization}
    return section


def runs_in_onnxruntime(path: Path, input_spec: InputSpec, width: int = 1) -> str:
    """Run two random windows; the model must give ``width`` finite scores per window (one output tensor, ``(N,)``
    or ``(N, width)``). Returns the output tensor's name."""
    import onnxruntime as ort

    from edge.preprocess import batch_windows

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        batch = batch_windows(random_windows(input_spec, 2, np.random.default_rng(0)), input_spec)
        outputs = session.run(None, {input_spec.name: batch})
    except Exception as exc:  # ONNX Runtime raises its own many types: convert at this boundary
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise _refuse(
            path, f"ONNX Runtime cannot run it on a batch of 2: {first}", "check --layout, --frames, --size"
        ) from exc
    if len(outputs) != 1 or np.asarray(outputs[0]).size != 2 * width or not np.isfinite(outputs[0]).all():
        shapes = [np.asarray(o).shape for o in outputs]
        want = "one finite score per window" if width == 1 else f"one tensor of {width} finite scores per window"
        fix = "a single (N,) or (N, 1) severity output" if width == 1 else f"a single (N, {width}) output"
        raise _refuse(path, f"gives outputs {shapes} for 2 windows; a bundle of {width} output(s) needs {want}",
                      f"export the model with {fix}, or name as many outputs as it has columns")  # fmt: skip
    return str(session.get_outputs()[0].name)


def onnxruntime_scorer(path: Path, spec: InputSpec) -> Scorer:
    """Scores of the ONNX file at ``path`` on ONNX Runtime's CPU, normalised as the device normalises."""
    from calibration.pipeline import run_all_scores
    from edge.preprocess import batch_windows

    def score(windows: npt.NDArray[np.uint8]) -> npt.NDArray[np.floating]:
        batches = (batch_windows(list(windows[i : i + 8]), spec) for i in range(0, len(windows), 8))
        return run_all_scores(path, batches)

    return score


@dataclass(frozen=True)
class Imported:
    """The bundle made and the output check it passed."""

    bundle: Bundle
    output_check: OutputCheck | None


def import_onnx(
    path: Path,
    out: Path,
    spec: IntakeSpec,
    *,
    name: str | None = None,
    training_data: str | None = None,
    check: OutputCheckSource | None = None,
    force: bool = False,
    scale: Scale = BDI_II,
    outputs: Sequence[NamedScale] = (),
) -> Imported:
    """Check ``path`` and write a bundle for it at ``out`` (staged, moved into place only when all passed); its
    output is on ``scale``, or with ``outputs`` (two or more) its ``(N, K)`` output's columns are those."""
    if not path.is_file():
        raise OnnxIntakeError(f"ONNX model {path} does not exist", fix="pass the path of a .onnx file")
    check_destination(out, force=force)
    try:
        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises ValidationError, DecodeError and others
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise OnnxIntakeError(
            f"{path} is not a valid ONNX model: {first}", fix="pass a file onnx.checker accepts"
        ) from exc
    section = input_section(path, model, spec)
    input_spec = InputSpec.from_manifest(section)
    regions = {"tiles": list(spec.tiles)} if spec.tiles is not None else default_regions_section(input_spec.height)
    output_name = runs_in_onnxruntime(path, input_spec, max(len(outputs), 1))
    tiles = tuple(Tile(**tile) for tile in regions["tiles"])
    if outputs:
        scale = outputs[0].scale
    checked = check_output(
        onnxruntime_scorer(path, input_spec), input_spec, tiles, HEAD, check or OutputCheckSource(), scale=scale,
        more=outputs[1:],
    )  # fmt: skip
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    card = model_card(random_weights=False, training_data=training_data, scale=scale)
    provenance = (
        f"Imported from {path.name}: its architecture and training are outside this project's zoo; check its "
        "provenance and evaluate it (python -m export evaluate)."
    )
    card["limitations"].insert(0, provenance)
    manifest: dict[str, Any] = {
        "model": {
            "name": name or path.stem,
            "version": "1",
            "architecture": ARCHITECTURE,
            "architecture_options": {"graph": model.graph.name, "producer": model.producer_name, "source": path.name},
            "weights": {
                "source": "checkpoint",
                "checkpoint_sha256": sha256_of(path),
                "checkpoint_format": "onnx",
                "note": f"imported from {path.name}",
                "random_layers": [],
            },
            "parameters": int(sum(np.prod(init.dims, dtype=np.int64) for init in model.graph.initializer)),
            "macs_per_window": macs_of_onnx(path),
        },
        "input": section,
        "regions": regions,
        **manifest_outputs(outputs or (NamedScale(output_name, scale),)),
        "artifacts": [{"path": MODEL_FILE, "kind": "onnx", "precision": "fp32", "target": "any", "opset": opset}],
        "calibration": None,
        "model_card": card,
    }
    if checked is not None:
        manifest["model"]["output_check"] = checked.as_dict()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    staging.chmod(0o755)
    try:
        shutil.copyfile(path, staging / MODEL_FILE)
        write_manifest(staging, manifest)
        move_into_place(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return Imported(load_bundle(out), checked)


def tiles_option(values: Sequence[str]) -> tuple[dict[str, Any], ...]:
    """``REGION:X,Y,W,H`` strings as manifest tiles."""
    tiles = []
    for value in values:
        region, _, box = value.partition(":")
        try:
            x, y, width, height = (int(n) for n in box.split(","))
        except ValueError as exc:
            raise ConfigError(f"--tile {value!r} is not REGION:X,Y,W,H", fix="e.g. --tile mouth:0,56,112,56") from exc
        tiles.append({"region": region, "x": x, "y": y, "width": width, "height": height})
    return tuple(tiles)
