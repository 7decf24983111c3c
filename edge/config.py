"""The daemon's configuration: a TOML file validated by pydantic models, with ``--set section.key=value`` overrides.

Every section forbids unknown keys; a validation problem is reported as one line naming the file, the dotted key,
what was wrong, what was given and the fix, e.g.
``config.toml: mqtt.port: must be 1-65535, got 99999 (fix: the broker's TCP port ...)``. Relative paths in the
file are taken relative to the file's directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from edge.errors import ConfigError
from edge.explain.settings import ExplainSettings
from edge.face.config import FaceConfig
from edge.publish.settings import AggregationSettings, MqttSettings, PrivacySettings
from edge.trust.settings import TrustSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEMO_BUNDLE = Path(__file__).parent / "assets" / "demo_bundle"
"""The small demo model shipped in the package."""


class _Section(BaseModel):
    # allow_inf_nan=False: ``inf`` or ``nan`` would pass every ``gt``/``ge`` bound and fail only in service
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class DeviceSettings(_Section):
    """Where the device keeps its state."""

    state_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("STATE_DIRECTORY", "/var/lib/expresso-edge").split(":")[0]),
        description="directory for the device secret, consent record and outbox (systemd's StateDirectory)",
    )


class CameraSettings(_Section):
    """The video source."""

    source: str = Field(
        "/dev/video0",
        min_length=1,
        description="V4L2 device path or index (/dev/video0, 0), GStreamer pipeline (nvarguscamerasrc ! ... ! "
        "appsink), RTSP/HTTP URL, or a video file",
    )
    realtime: bool = Field(
        True, description="video files only: play at the file's frame rate (false: as fast as possible)"
    )
    queue_size: int = Field(
        4, ge=1, le=64, description="sampled frames held for inference before the oldest is dropped"
    )
    reopen_max_s: float = Field(
        30.0, gt=0, le=3600, description="longest wait between attempts to reopen a lost camera"
    )

    @field_validator("source", mode="before")
    @classmethod
    def _index_as_text(cls, value: object) -> object:
        """``source = 0`` (a V4L2 index written as a number) is the same as ``source = "0"``."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ModelSettings(_Section):
    """Which model bundle runs, and on what."""

    bundle: Path = Field(DEMO_BUNDLE, description="model bundle directory (default: the bundled demo model)")
    backend: str = Field("auto", description="inference backend: auto, onnxruntime or tensorrt")
    precision: Literal["auto", "fp32", "fp16", "int8"] = Field("auto", description="model precision to run")
    threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="CPU threads for inference (default: all cores but one, which the face pipeline uses)",
    )
    allow_random_weights: bool = Field(
        False,
        description="run a bundle whose manifest lists random or re-initialised layers (tests and demos only: "
        "its scores mean nothing)",
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        from edge.backends import registry

        keys = ["auto", *sorted(registry())]
        if value not in keys:
            raise ValueError(f"must be one of {', '.join(keys)}")
        return value


_FACE = FaceConfig()


class FaceSettings(_Section):
    """Face tracking and quality thresholds an operator may tune (the rest keep edge.face's defaults)."""

    max_num_faces: int = Field(_FACE.max_num_faces, ge=1, le=10, description="faces tracked per frame")
    min_detection_confidence: float = Field(
        _FACE.min_detection_confidence, ge=0, le=1, description="mediapipe's face detection threshold"
    )
    min_tracking_confidence: float = Field(
        _FACE.min_tracking_confidence, ge=0, le=1, description="mediapipe's landmark tracking threshold"
    )
    detector_fallback: bool = Field(
        _FACE.detector_fallback, description="find small faces with the full-range detector, then mesh a crop"
    )
    max_abs_yaw: float = Field(
        _FACE.max_abs_yaw, gt=0, le=90, description="head turn (degrees) beyond which a frame fails"
    )
    max_abs_pitch: float = Field(
        _FACE.max_abs_pitch, gt=0, le=90, description="head tilt (degrees) beyond which a frame fails"
    )
    min_brightness: float = Field(_FACE.min_brightness, ge=0, le=255, description="darkest mean grey level of the face")
    max_brightness: float = Field(
        _FACE.max_brightness, ge=0, le=255, description="brightest mean grey level of the face"
    )
    min_blur: float = Field(
        _FACE.min_blur, ge=0, le=100_000, description="least Laplacian variance of the face (sharpness)"
    )
    min_face_fraction: float = Field(
        _FACE.min_face_fraction, gt=0, le=1, description="share of a window's frames that must show the face"
    )

    @model_validator(mode="after")
    def _brightness_range(self) -> FaceSettings:
        if self.min_brightness >= self.max_brightness:  # every frame would fail the quality gate, silently
            raise ValueError(
                f"face.min_brightness ({self.min_brightness}) must be below face.max_brightness "
                f"({self.max_brightness}), or no frame passes the quality gate"
            )
        return self

    def to_face_config(self) -> FaceConfig:
        """The face pipeline's own configuration with these values."""
        return dataclasses.replace(_FACE, **self.model_dump())


class Config(_Section):
    """The whole daemon configuration."""

    device: DeviceSettings = Field(default_factory=DeviceSettings, description="device state")
    camera: CameraSettings = Field(default_factory=CameraSettings, description="video source")
    model: ModelSettings = Field(default_factory=ModelSettings, description="model bundle and backend")
    face: FaceSettings = Field(default_factory=FaceSettings, description="face tracking")
    aggregation: AggregationSettings = Field(default_factory=AggregationSettings, description="sessions, periods")
    privacy: PrivacySettings = Field(default_factory=PrivacySettings, description="consent, k, differential privacy")
    mqtt: MqttSettings = Field(default_factory=MqttSettings, description="broker connection, health interval")
    trust: TrustSettings = Field(default_factory=TrustSettings, description="trusted keys, remote control policy")
    explain: ExplainSettings = Field(default_factory=ExplainSettings, description="region explanations")


class InvalidConfigError(ConfigError):
    """A configuration breaks one or more rules; ``problems`` lists them, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


# -- reading -----------------------------------------------------------------------------------------------------


def _parse_value(text: str) -> Any:
    """A TOML literal (number, boolean, quoted string, array) or, failing that, the bare text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides to raw configuration data (a new dict; ``data`` is not changed)."""
    merged: dict[str, Any] = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(f"--set {item!r} is not section.key=value", fix="write e.g. --set mqtt.port=1884")
        node = merged
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {part} is a value, not a section", fix="check the key's spelling")
            node[part] = child = dict(child)
            node = child
        node[parts[-1]] = _parse_value(value.strip())
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    """The raw contents of a TOML file, with errors as :class:`ConfigError`."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist", fix="pass an existing file to --config") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", fix="correct the syntax at that line") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}", fix="check its permissions") from exc


def _relative_to(config: Config, base: Path, data: dict[str, Any]) -> Config:
    """Resolve relative paths that came from the file against the file's directory."""
    device, model, camera = config.device, config.model, config.camera
    if "state_dir" in data.get("device", {}) and not device.state_dir.is_absolute():
        device = device.model_copy(update={"state_dir": base / device.state_dir})
    if "bundle" in data.get("model", {}) and not model.bundle.is_absolute():
        model = model.model_copy(update={"bundle": base / model.bundle})
    source = camera.source
    if "source" in data.get("camera", {}) and (base / source).is_file() and not Path(source).is_absolute():
        camera = camera.model_copy(update={"source": str(base / source)})
    return config.model_copy(
        update={"device": device, "model": model, "camera": camera, "mqtt": _mqtt_files(config, base, data)}
    )


def _mqtt_files(config: Config, base: Path, data: dict[str, Any]) -> MqttSettings:
    """The password and TLS files from the file, against its directory (they were read against the working
    directory: check-config run in /etc/expresso-edge found what the daemon, started in /, refused)."""
    mqtt, tls = config.mqtt, config.mqtt.tls
    given = data.get("mqtt", {})

    def resolved(path: Path | None, key: str, section: dict[str, Any]) -> Path | None:
        if path is not None and key in section and not path.is_absolute():
            return base / path
        return path

    names = ("ca_file", "cert_file", "key_file")
    tls = tls.model_copy(update={name: resolved(getattr(tls, name), name, given.get("tls", {})) for name in names})
    return mqtt.model_copy(update={"password_file": resolved(mqtt.password_file, "password_file", given), "tls": tls})


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read, override and validate a configuration; ``path=None`` starts from the defaults."""
    file_data = read_toml(Path(path)) if path is not None else {}
    data = apply_overrides(file_data, overrides)
    origin = Path(path).name if path is not None else "defaults"
    overridden = {item.partition("=")[0].strip() for item in overrides}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfigError(describe_errors(exc, origin, overridden)) from None
    return _relative_to(config, Path(path).parent, file_data) if path is not None else config


# -- messages ----------------------------------------------------------------------------------------------------


def _field_at(loc: Sequence[str | int]) -> tuple[FieldInfo | None, type[BaseModel] | None]:
    """The field a validation location points at, and the model that holds it."""
    model: type[BaseModel] | None = Config
    info: FieldInfo | None = None
    holder: type[BaseModel] | None = None
    for part in loc:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return info, holder if model is None else model
        holder, info = model, model.model_fields[part]
        model = next(
            (
                t
                for t in (info.annotation, *get_args(info.annotation))
                if isinstance(t, type) and issubclass(t, BaseModel)
            ),
            None,
        )
    return info, holder


_SYMBOLS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
_BOUND_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _bounds(info: FieldInfo | None) -> str:
    """A field's numeric limits as text: ``must be 1-65535`` or ``must be > 0 and <= 3600``."""
    found = {
        name: getattr(item, name)
        for item in (info.metadata if info else ())
        for name, _ in _SYMBOLS
        if getattr(item, name, None) is not None
    }
    if "ge" in found and "le" in found:
        return f"must be {found['ge']}-{found['le']}"
    parts = [f"{symbol} {found[name]}" for name, symbol in _SYMBOLS if name in found]
    return "must be " + " and ".join(parts) if parts else ""


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """What went wrong with one value, and the fix."""
    loc = error["loc"]
    dotted = ".".join(map(str, loc))
    info, holder = _field_at(loc)
    kind = error["type"]
    given = error.get("input")
    about = info.description if info and info.description else ""
    if kind == "extra_forbidden":
        names = sorted(holder.model_fields) if holder else []
        close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
        hint = f"did you mean {'.'.join(map(str, (*loc[:-1], close[0])))}? " if close else ""
        return "unknown key", f"{hint}valid keys here: {', '.join(names)}"
    if kind == "missing":
        return "required but missing", f"set it: {about}" if about else "set it"
    section = info.annotation if info is not None else None
    if kind == "model_type" and isinstance(section, type) and issubclass(section, BaseModel):
        keys = ", ".join(sorted(section.model_fields))
        return f"is a section, got {given!r}", f"write it as [{dotted}] followed by its keys ({keys})"
    bounds = _bounds(info) if kind in (*_BOUND_ERRORS, "finite_number") else ""
    if kind == "finite_number":  # inf or nan: would pass every bound and fail in service
        bounds = f"must be a finite number{' (' + bounds.removeprefix('must be ') + ')' if bounds else ''}"
    message = bounds or error["msg"][0].lower() + error["msg"][1:]
    if kind == "value_error":
        message = message.removeprefix("value error, ")
    what = message if isinstance(given, dict) else f"{message}, got {given!r}"
    if kind == "literal_error" and isinstance(given, str) and info is not None:
        close = difflib.get_close_matches(given, [str(c) for c in get_args(info.annotation)], n=1)
        if close:
            return what, f"did you mean {close[0]!r}?"
    about = about.rstrip(".")
    return what, f"set {dotted} to a valid value ({about})" if about else "see systemd/config.example.toml"


def describe_errors(exc: ValidationError, origin: str, overridden: Collection[str] = ()) -> list[str]:
    """One ``origin: dotted.key: problem (fix: ...)`` line per validation error."""
    lines = []
    for error in exc.errors():
        dotted = ".".join(str(part) for part in error["loc"]) or "(top level)"
        where = "--set" if dotted in overridden else origin
        problem, fix = _describe(dict(error))
        lines.append(f"{where}: {dotted}: {problem} (fix: {fix})")
    return lines
