"""The integrator client: subscribe to devices, validate, de-duplicate and store; send control, wait for the reply.

It needs only the package's core dependencies (paho-mqtt, jsonschema), plus psycopg for the PostgreSQL store, and
never imports the device side. ``python -m edge subscribe`` and ``python -m edge control`` are its command line.

    store = open_store("sqlite:///var/lib/integrator/expresso.sqlite")
    worker = Integrator(store, Connection(host="broker.lan"), prefix="expresso", group="ingest")
    worker.start(); ...; worker.stop()
    reply = ControlSender(Connection(host="broker.lan"), prefix="expresso").send(device, {"command": "pause"})
"""

from edge.client.connection import Connection
from edge.client.control import ControlReplyTimeoutError, ControlSender, Reply
from edge.client.messages import Checked, check
from edge.client.stores import Store, StoreError, open_store
from edge.client.subscriber import Integrator

__all__ = [
    "Checked",
    "Connection",
    "ControlReplyTimeoutError",
    "ControlSender",
    "Integrator",
    "Reply",
    "Store",
    "StoreError",
    "check",
    "open_store",
]
