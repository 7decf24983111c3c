"""The tests' Mosquitto helper: a restart keeps its port even when something holds the port for a moment."""

from __future__ import annotations

import socket
import threading

from mqtt_broker import Broker


def test_a_restart_waits_for_its_port_instead_of_failing(mqtt_broker: Broker) -> None:
    mqtt_broker.stop()
    holder = socket.socket()  # bound, not listening: Mosquitto cannot bind, and nobody answers in its place
    holder.bind((mqtt_broker.host, mqtt_broker.port))
    threading.Timer(1.0, holder.close).start()  # e.g. a client's connection that the kernel has not let go yet
    mqtt_broker.start()
    assert "Address already in use" in (mqtt_broker.workdir / "mosquitto.log").read_text()
    with socket.create_connection((mqtt_broker.host, mqtt_broker.port), timeout=2):
        pass
