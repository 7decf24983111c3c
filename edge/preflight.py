"""Start-up checks shared by ``run`` and ``check-config``: one function per thing the daemon refuses to start on.

``run`` calls them before it starts anything; ``check-config`` calls the same functions, so it refuses first
what ``run`` would refuse, with the same exit code and message. Each raises the project's error for its failure:
bundle (4), backend or precision (5/6), camera source kind this OpenCV cannot open (3), TLS and password files
(3), state directory and the device secret and outbox in it (3); the optional checks: ``--probe`` opens the
source and reads a frame (6), ``--connect`` reaches the broker (8). None of them imports mediapipe or writes into
the state directory.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

from edge.backends.base import Backend
from edge.bundle import Bundle, load_bundle
from edge.config import Config
from edge.errors import BrokerError, BundleError, ConfigError, InputError
from edge.publish.settings import MqttSettings
from edge.sources import SourceKind, classify_source, display_source, opencv_backend
from edge.statelock import StateDirLock

PROBE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0


def load_checked_bundle(config: Config) -> Bundle:
    """The configured bundle, verified (schema, version, every file's hash; with ``trust.bundle_keys``, the
    signature) and refused when its weights are random unless ``model.allow_random_weights``: the one load path of
    the daemon."""
    bundle = load_bundle(config.model.bundle, config.trust.bundle_public_keys())
    check_weights(bundle, allow_random=config.model.allow_random_weights)
    return bundle


def random_layers(bundle: Bundle) -> list[str]:
    """The layers the manifest says were never trained: ``["*"]`` for ``weights.source = "random"``, else
    ``weights.random_layers`` (empty for a fully trained model)."""
    weights = bundle.manifest["model"].get("weights", {})
    if weights.get("source") == "random":
        return ["*"]
    return [str(name) for name in weights.get("random_layers", [])]


def check_weights(bundle: Bundle, *, allow_random: bool) -> str:
    """BundleError when the bundle has random or re-initialised layers and ``allow_random`` is off."""
    untrained = random_layers(bundle)
    if not untrained:
        return "trained"
    what = "random weights only" if untrained == ["*"] else f"re-initialised layers {', '.join(untrained[:4])}"
    if len(untrained) > 4:
        what += f" (+{len(untrained) - 4} more)"
    if allow_random:
        return f"{what}, allowed by model.allow_random_weights"
    raise BundleError(
        f"bundle {bundle.root} has {what} (manifest model.weights): its scores would mean nothing",
        fix="export the bundle from a trained checkpoint, or set model.allow_random_weights = true "
        "for a test or demonstration",
    )


def open_backend(config: Config, bundle: Bundle) -> Backend:
    """The configured backend and precision, loaded for ``bundle`` (BackendUnavailableError or InputError if not
    runnable here)."""
    from edge.backends import create

    threads = config.model.threads or max(1, (os.cpu_count() or 1) - 1)  # a core stays with the face pipeline
    return create(config.model.backend, bundle, precision=config.model.precision, threads=threads)


_NEEDS = {
    SourceKind.GSTREAMER: (
        "GSTREAMER",
        "install an OpenCV built with GStreamer beside mediapipe (docs/daemon.md, 'GStreamer on a Jetson'), "
        "or use a /dev/videoN source",
    ),
    SourceKind.DEVICE: ("V4L2", "use an OpenCV build with V4L2 (pip's opencv-contrib-python has it on Linux)"),
    SourceKind.URL: ("FFMPEG", "use an OpenCV build with FFmpeg (pip's opencv-contrib-python has it)"),
    SourceKind.FILE: ("FFMPEG", "use an OpenCV build with FFmpeg (pip's opencv-contrib-python has it)"),
}


def check_source(source: str) -> str:
    """The source's kind when this OpenCV build can open that kind (ConfigError naming the fix when it cannot);
    a video file must exist (InputError). A missing camera is not refused: the daemon waits for it."""
    kind = classify_source(source)
    backend, fix = _NEEDS[kind]
    if not opencv_backend(backend):
        shown = display_source(source)
        raise ConfigError(
            f"camera.source {shown[:60]!r} is a {kind.value} source but this OpenCV build has no {backend} support",
            fix=fix,
        )
    if kind is SourceKind.FILE and not Path(source).is_file():
        raise InputError(f"camera.source: video file {source} does not exist", fix="pass a readable video file")
    return kind.value


def check_camera_present(source: str) -> str:
    """A V4L2 device node must exist (check-config only: the daemon waits for a camera plugged in later)."""
    text = source.strip()
    if classify_source(text) is not SourceKind.DEVICE:
        return "not a V4L2 device"
    node = Path(f"/dev/video{text}" if text.isdigit() else text)
    if not node.exists():
        raise InputError(
            f"camera.source {text}: {node} does not exist (the daemon would wait for it as a lost camera)",
            fix="plug the camera in, or list cameras with v4l2-ctl --list-devices and set camera.source",
        )
    return f"{node} exists"


def probe_source(source: str, timeout: float = PROBE_TIMEOUT_S) -> tuple[int, int]:
    """Open the source and read one frame within ``timeout``; its (width, height), else InputError."""
    from edge.sources import open_source

    result: dict[str, object] = {}

    def read() -> None:
        try:
            cap = open_source(source)
            try:
                ok, frame = cap.read()
                result["frame"] = frame if ok else None
            finally:
                cap.release()
        except Exception as error:  # handed to the caller's thread
            result["error"] = error

    worker = threading.Thread(target=read, daemon=True, name="probe-source")
    worker.start()
    worker.join(timeout)
    if "error" in result:
        error = result["error"]
        raise error if isinstance(error, InputError | ConfigError) else InputError(str(error), fix="see the log")
    frame = result.get("frame")
    if frame is None:
        waited = "gave no frame" if not worker.is_alive() else f"gave no frame within {timeout:.0f} s"
        raise InputError(
            f"camera.source {display_source(source)!r} opened but {waited}",
            fix="check the camera or stream (e.g. with ffplay or gst-launch-1.0) and the pipeline's caps",
        )
    height, width = frame.shape[:2]  # type: ignore[attr-defined]
    return int(width), int(height)


def check_tls_files(mqtt: MqttSettings) -> bool:
    """The TLS files parse (CA, client certificate and key); False when TLS is not used."""
    from edge.publish.mqtt import build_ssl_context

    if mqtt.enabled and mqtt.tls.enabled:
        build_ssl_context(mqtt.tls)
        return True
    return False


def check_password_file(mqtt: MqttSettings) -> bool:
    """The password file reads; False when none is configured (or MQTT is off)."""
    from edge.publish.mqtt import read_password

    if not mqtt.enabled or mqtt.password_file is None:
        return False
    read_password(mqtt)
    return True


def check_state_dir(state_dir: Path, *, create: bool) -> None:
    """The state directory (or, before it exists and without ``create``, the parent that would hold it) is a
    directory this user may write; ConfigError naming ``device.state_dir`` otherwise."""
    fix = "point device.state_dir at a writable directory (the systemd unit's StateDirectory= gives one)"
    target = state_dir
    while not target.exists() and target != target.parent:
        target = target.parent
    if not target.is_dir():
        raise ConfigError(f"device.state_dir {state_dir}: {target} is not a directory", fix=fix)
    try:
        if create:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            target = state_dir
        with tempfile.TemporaryFile(dir=target, prefix=".write-test-"):
            pass
    except OSError as error:
        where = "is not writable" if target == state_dir else f"cannot be created in {target}"
        raise ConfigError(f"device.state_dir {state_dir} {where} ({error.strerror})", fix=fix) from error


def check_state_files(state_dir: Path) -> str:
    """The device secret and outbox already in the state directory read as the daemon will read them (ConfigError,
    exit 3, with the daemon's message otherwise); nothing is changed or created."""
    from edge.privacy.pseudonym import check_secret
    from edge.publish.outbox import check_outbox_file

    checks = (("device secret", check_secret), ("outbox", check_outbox_file))
    found = [name for name, there in checks if there(state_dir)]
    held = StateDirLock(state_dir).holder()
    running = f"; in use by a running daemon (pid {held}): run refuses a second one here" if held else ""
    return (f"{' and '.join(found)} readable" if found else "none yet") + running


def check_connect(mqtt: MqttSettings, timeout: float = CONNECT_TIMEOUT_S) -> str:
    """Connect to the broker with the configured TLS and credentials and disconnect; BrokerError with the reason.

    The client id is a fresh one, not the daemon's: a running daemon keeps its connection."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from edge.publish.mqtt import build_ssl_context, read_password

    v5 = mqtt.protocol == "5"
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"expresso-edge-check-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )
    if mqtt.tls.enabled:
        client.tls_set_context(build_ssl_context(mqtt.tls))
    if mqtt.username is not None:
        client.username_pw_set(mqtt.username, read_password(mqtt))
    answered = threading.Event()
    reason: list[str] = []

    def on_connect(client: paho.Client, userdata: object, flags: object, code: object, props: object) -> None:
        reason.append(str(code))
        answered.set()

    client.on_connect = on_connect
    where = f"{mqtt.host}:{mqtt.port}"
    fix = "check mqtt.host, mqtt.port, TLS and credentials, and that the broker runs (mosquitto_sub -h HOST -t '#')"
    started = time.monotonic()
    try:
        client.connect(mqtt.host, mqtt.port, keepalive=mqtt.keepalive_s)
        client.loop_start()
        answered.wait(timeout)
    except (OSError, ValueError) as error:  # refused, unreachable, TLS handshake or certificate
        raise BrokerError(f"broker {where} cannot be reached: {error}", fix=fix) from error
    finally:
        client.disconnect()
        client.loop_stop()
    if not reason:
        raise BrokerError(f"broker {where} did not answer within {timeout:.0f} s", fix=fix)
    if reason[0] != "Success":
        raise BrokerError(f"broker {where} refused the connection: {reason[0]}", fix=fix)
    return f"connected to {where} in {1000 * (time.monotonic() - started):.0f} ms"
