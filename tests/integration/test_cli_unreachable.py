"""Operator commands against services that are down: one line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.embedded import free_port

SEND = '{"type": "ChangeOrderStatus", "order_id": 1, "status": 2, "actor": {"id": "a", "role": "staff"}}'


@pytest.mark.parametrize(
    "args",
    [["send", SEND], ["topics", "create"], ["replay", "--group", "g", "--topic", "t", "--to-earliest"]],
    ids=["send", "topics-create", "replay"],
)
def test_unreachable_broker_is_one_line(cli_env, args):
    """A broker nobody listens on gives exactly one error line naming the problem."""
    env = {**cli_env, "ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    done = subprocess.run([sys.executable, "-m", "service.entrypoints.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()], done.stderr
    assert "cannot reach a service" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [["history", "1"], ["transitions", "1", "--role", "staff"], ["migrate"]],
                         ids=["history", "transitions", "migrate"])
def test_unreachable_database_is_one_line(cli_env, args):
    """A database nobody listens on gives exactly one error line."""
    env = {**cli_env, "ORDERSTATUS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/orderstatus"}
    done = subprocess.run([sys.executable, "-m", "service.entrypoints.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
