"""The broker of the integration suite, picked once by `ORDERSTATUS_TEST_BROKER` (embedded | apache | docker).

Fault tests that break a broker start a private one of the same engine with `new_broker()`: both kinds
answer `start()`, `stop()`, `pause()` (freeze every process, keeping the data) and `resume()`."""

from __future__ import annotations

import os

from service.devkit.apache_kafka import ApacheKafka
from service.devkit.embedded import EmbeddedBroker, scratch_dir

_DEFAULT = "docker" if os.environ.get("ORDERSTATUS_TEST_BACKEND") == "docker" else "embedded"
BROKER = os.environ.get("ORDERSTATUS_TEST_BROKER", _DEFAULT)
if BROKER not in ("embedded", "apache", "docker"):
    raise RuntimeError(f"ORDERSTATUS_TEST_BROKER={BROKER!r}: use embedded, apache or docker")

ON_APACHE = BROKER in ("apache", "docker")


def new_broker(purpose: str) -> EmbeddedBroker | ApacheKafka:
    """A broker of the suite's engine, not started, logging into a scratch folder named for `purpose`."""
    folder = scratch_dir(f"orderstatus-{purpose}-broker-")
    if BROKER == "embedded":
        return EmbeddedBroker(log_path=folder / "tansu.log")
    if BROKER == "apache":
        return ApacheKafka(folder)
    raise RuntimeError("a private broker for a fault test needs ORDERSTATUS_TEST_BROKER=embedded or apache")
