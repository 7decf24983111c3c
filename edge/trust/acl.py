"""The Mosquitto ACL that confines each device to its own topics, and the lines for one device.

Devices log in with user name = client id = pseudonym (the topics' device segment), so ``pattern`` lines with
``%u`` confine every device at once. The patterns key on ``%u``, which the password file vouches for, not on
``%c``: a client picks its own client id, so a ``%c`` rule would let one device's credentials act as another.
The integrator role reads every device's status, summary, health and replies, and writes control.
"""

from __future__ import annotations

DEVICE_WRITES = ("status", "summary", "health", "reply/#")
DEVICE_READS = ("control",)
INTEGRATOR_READS = ("status", "summary", "health", "reply/#")
INTEGRATOR_WRITES = ("control",)


def acl_text(prefix: str, integrator: str = "integrator") -> str:
    """A whole Mosquitto ``acl_file`` for one topic prefix: the integrator user and the per-device patterns."""
    root = f"{prefix.rstrip('/')}/v1"
    lines = [
        "# expresso-edge broker ACL (docs/security.md). Devices: user name = client id = pseudonym",
        "# (python -m edge identity prints it). mosquitto.conf: allow_anonymous false, password_file, acl_file",
        "# (systemd/mosquitto/mosquitto.conf.example). Rules key on %u, which the password vouches for, not %c.",
        "",
        "# integrator role: reads every device's status, summary, health and replies; sends control",
        f"user {integrator}",
        *(f"topic read {root}/+/{suffix}" for suffix in INTEGRATOR_READS),
        *(f"topic write {root}/+/{suffix}" for suffix in INTEGRATOR_WRITES),
        "",
        "# every device: its own topics only (%u: the authenticated user name)",
        *pattern_lines(prefix),
    ]
    return "\n".join(lines) + "\n"


def pattern_lines(prefix: str) -> list[str]:
    """The ``pattern`` lines that confine every device to ``<prefix>/v1/<its user name>/...``."""
    root = f"{prefix.rstrip('/')}/v1/%u"
    return [
        *(f"pattern write {root}/{suffix}" for suffix in DEVICE_WRITES),
        *(f"pattern read {root}/{suffix}" for suffix in DEVICE_READS),
    ]


def device_lines(prefix: str, pseudonym: str) -> list[str]:
    """The same rights as explicit ``user`` lines for one device (for an ACL file without patterns)."""
    rules = (line.replace("pattern ", "topic ").replace("%u", pseudonym) for line in pattern_lines(prefix))
    return [f"user {pseudonym}", *rules]
