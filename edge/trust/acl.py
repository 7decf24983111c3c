"""The Mosquitto ACL that confines each device to its own topics, and the lines for one device.

Devices log in with user name = client id = pseudonym (the topics' device segment), so ``pattern`` lines with
``%u`` confine every device at once. The patterns key on ``%u``, which the password file vouches for, not on
``%c``: a client picks its own client id, so a ``%c`` rule would let one device's credentials act as another, and
a client reusing a device's client id takes its session over; ``use_username_as_clientid true`` in
mosquitto.conf stops that (each integrator worker then needs a user name of its own: list them all).
The integrator role reads every device's status, summary, health and replies, and writes control.
"""

from __future__ import annotations

from edge.schemas import TOPIC_LEVEL

DEVICE_WRITES = ("status", "summary", "health", "reply/#")
DEVICE_READS = ("control",)
INTEGRATOR_READS = ("status", "summary", "health", "reply/#")
INTEGRATOR_WRITES = ("control",)


def acl_text(prefix: str, integrators: tuple[str, ...] = ("integrator",)) -> str:
    """A whole Mosquitto ``acl_file`` for one topic prefix: the integrator users and the per-device patterns."""
    root = f"{prefix.rstrip('/')}/{TOPIC_LEVEL}"
    rights = [
        *(f"topic read {root}/+/{suffix}" for suffix in INTEGRATOR_READS),
        *(f"topic write {root}/+/{suffix}" for suffix in INTEGRATOR_WRITES),
    ]
    lines = [
        "# expresso-edge broker ACL (docs/security.md). Devices: user name = client id = pseudonym",
        "# (python -m edge identity prints it). mosquitto.conf: allow_anonymous false, password_file, acl_file",
        "# and use_username_as_clientid true (systemd/mosquitto/mosquitto.conf.example). Rules key on %u, which",
        "# the password vouches for, never on %c (a client picks its own id).",
        "",
        "# integrator role (one user per worker): reads every device's status, summary, health and replies;",
        "# sends control",
        *(line for name in integrators for line in (f"user {name}", *rights, "")),
        "# every device: its own topics only (%u: the authenticated user name)",
        *pattern_lines(prefix),
    ]
    return "\n".join(lines) + "\n"


def pattern_lines(prefix: str) -> list[str]:
    """The ``pattern`` lines that confine every device to ``<prefix>/v2/<its user name>/...``."""
    root = f"{prefix.rstrip('/')}/{TOPIC_LEVEL}/%u"
    return [
        *(f"pattern write {root}/{suffix}" for suffix in DEVICE_WRITES),
        *(f"pattern read {root}/{suffix}" for suffix in DEVICE_READS),
    ]


def device_lines(prefix: str, pseudonym: str) -> list[str]:
    """The same rights as explicit ``user`` lines for one device (for an ACL file without patterns)."""
    rules = (line.replace("pattern ", "topic ").replace("%u", pseudonym) for line in pattern_lines(prefix))
    return [f"user {pseudonym}", *rules]
