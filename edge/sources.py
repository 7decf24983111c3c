"""Video sources: tell a V4L2 camera, a GStreamer pipeline, a network stream and a file apart, and open them."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any

import cv2

from edge.errors import InputError

_URL = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp)://", re.IGNORECASE)
_DEVICE_PATH = re.compile(r"^/dev/video\d+$")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


class SourceKind(str, Enum):
    """What a capture source string names."""

    DEVICE = "device"
    GSTREAMER = "gstreamer"
    URL = "url"
    FILE = "file"


def classify_source(source: str | int) -> SourceKind:
    """Tell a V4L2 index or path, a GStreamer pipeline, a network URL and a video file apart."""
    text = str(source).strip()
    if isinstance(source, int) or text.isdigit() or _DEVICE_PATH.match(text):
        return SourceKind.DEVICE
    if "!" in text:
        return SourceKind.GSTREAMER
    if _URL.match(text):
        return SourceKind.URL
    return SourceKind.FILE


def display_source(source: str | int) -> str:
    """``source`` fit for logs and the status topic: a URL's ``user:password@`` becomes ``***@``."""
    return _USERINFO.sub("***@", str(source).strip())


def opencv_backend(name: str) -> bool:
    """Whether this OpenCV build has the video I/O backend ``name`` (``GSTREAMER``, ``V4L2``, ``FFMPEG``)."""
    return bool(cv2.videoio_registry.hasBackend(getattr(cv2, f"CAP_{name}")))


def open_source(source: str | int) -> Any:
    """Open ``source`` with the OpenCV backend that fits it; raises :class:`InputError` when it will not open."""
    kind = classify_source(source)
    text = str(source).strip()
    if kind is SourceKind.DEVICE:
        cap = cv2.VideoCapture(int(text) if text.isdigit() else text, cv2.CAP_V4L2)
    elif kind is SourceKind.GSTREAMER:
        if not opencv_backend("GSTREAMER"):  # edge.preflight refuses this at start-up; here for direct callers
            raise InputError(
                f"camera.source is a GStreamer pipeline ({text[:60]}...) but this OpenCV build has no GStreamer",
                fix="install an OpenCV built with GStreamer (JetPack's python3-opencv), or use a /dev/videoN source",
            )
        cap = cv2.VideoCapture(text, cv2.CAP_GSTREAMER)
    elif kind is SourceKind.URL:
        cap = cv2.VideoCapture(text, cv2.CAP_FFMPEG)
    else:
        if not Path(text).is_file():
            raise InputError(f"video file {text} does not exist", fix="pass the path of a readable video file")
        cap = cv2.VideoCapture(text)
    if not cap.isOpened():
        cap.release()
        raise InputError(f"cannot open {kind.value} source {display_source(text)!r}", fix=_OPEN_FIXES[kind])
    return cap


_OPEN_FIXES = {
    SourceKind.DEVICE: "check that the camera is plugged in and the service may use it (group video, DeviceAllow=)",
    SourceKind.GSTREAMER: "test the pipeline with gst-launch-1.0 and end it with appsink",
    SourceKind.URL: "check the URL, the credentials in it and that the stream is up",
    SourceKind.FILE: "the file is damaged or not a video OpenCV decodes; re-encode it (ffmpeg -i in.mp4 out.mp4)",
}
