"""A reporter in its own process, for crash tests (the test kills it with SIGKILL).

usage: python publisher_proc.py STATE_DIR HOST PORT PREFIX COUNT hold|drain
Queues COUNT session summaries and prints "queued N"; then "hold" sleeps until killed and "drain" waits until
the outbox is empty and exits 0 (1 when it could not drain within 20 s).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from summary_factory import IDENTITY, session_summary

from edge.publish import MqttSettings, PrivacySettings, Reporter


def main() -> int:
    state, host, port, prefix, count, mode = sys.argv[1:]
    mqtt = MqttSettings(
        host=host, port=int(port), topic_prefix=prefix, keepalive_s=2, reconnect_min_s=1, reconnect_max_s=1
    )
    reporter = Reporter(mqtt, PrivacySettings(consent="granted"), Path(state), IDENTITY)
    reporter.start()
    queued = reporter.submit(session_summary([12.0] * 6) for _ in range(int(count)))
    print(f"queued {queued}", flush=True)
    if mode == "hold":
        while True:
            time.sleep(1)
    return 0 if reporter.stop(timeout=20) else 1


if __name__ == "__main__":
    sys.exit(main())
