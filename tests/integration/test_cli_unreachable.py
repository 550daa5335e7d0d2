"""Operator commands against services that are down: one line on stderr naming the problem, exit 1, no traceback."""

from __future__ import annotations

import pytest

from service.devkit.embedded import free_port
from tests.helpers.cli import run_cli, user_error

SEND = '{"type": "ChangeOrderStatus", "order_id": 1, "status": 2, "actor": {"id": "a", "role": "staff"}}'


@pytest.mark.parametrize(
    "args",
    [["send", SEND], ["topics", "create"], ["replay", "--group", "g", "--topic", "t", "--to-earliest"]],
    ids=["send", "topics-create", "replay"],
)
def test_unreachable_broker_is_one_line(cli_env, args):
    """A broker nobody listens on gives exactly one error line saying a service cannot be reached."""
    env = {**cli_env, "ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    user_error(run_cli(env, *args), "cannot reach a service")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["history", "1"], ["cannot reach a service", "Connect call failed"]),
        (["transitions", "1", "--role", "staff"], ["cannot reach a service", "Connect call failed"]),
        # migrate reports its own failure, with the connection error's type
        (["migrate"], ["migration failed", "ConnectionRefusedError", "Connect call failed"]),
    ],
    ids=["history", "transitions", "migrate"],
)
def test_unreachable_database_is_one_line(cli_env, args, fragments):
    """A database nobody listens on gives exactly one error line naming the refused connection to its port."""
    port = free_port()
    env = {**cli_env, "ORDERSTATUS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/orderstatus"}
    line = user_error(run_cli(env, *args), *fragments)
    assert f"'127.0.0.1', {port})" in line
