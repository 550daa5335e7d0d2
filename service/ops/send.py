"""`orderstatus send`: publish commands, keyed as DESIGN §5.3 says."""

from __future__ import annotations

import json
import time
import uuid

from service.contract.commands import parse_command
from service.contract.headers import Headers
from service.contract.keys import command_key
from service.contract.outcome import Outcome
from service.domain.commands import InvalidCommand
from service.ops.errors import OpsError


def prepare_command(line: str, number: int, validate: bool) -> tuple[bytes, bytes, dict]:
    """Turn one JSON text into (key, value, command); a missing command_id is generated."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise OpsError(f"command {number}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise OpsError(f"command {number}: must be a JSON object")
    data.setdefault("command_id", str(uuid.uuid4()))
    value = json.dumps(data).encode()
    if validate:
        parsed = parse_command(value)
        if isinstance(parsed, InvalidCommand):
            raise OpsError(f"command {number}: {parsed.message} (use --no-validate to send it anyway)")
    return command_key(data), value, data


async def send_commands(producer, topic: str, prepared: list[tuple[bytes, bytes, dict]],
                        headers: Headers = ()) -> list[dict]:
    """Publish in order (each with `headers`: the actor token) and wait for every acknowledgement;
    one line of where each went."""
    futures = [await producer.send(topic, value=v, key=k, headers=list(headers) or None) for k, v, _ in prepared]
    sent = []
    for (_, _, data), future in zip(prepared, futures):
        meta = await future
        sent.append({"command_id": data["command_id"], "type": data.get("type"), "partition": meta.partition,
                     "offset": meta.offset})
    return sent


async def send_and_wait(producer, tail, topic: str, prepared: list[tuple[bytes, bytes, dict]],
                        headers: Headers, timeout: float) -> tuple[list[dict], list[Outcome]]:
    """`send --wait`: publish, then wait (all commands together, at most `timeout` seconds from the publish)
    for each command's outcome events on the events topic. `tail` (an `EventsTail`) must have started
    before this is called, so no outcome can slip past between the publish and the first read."""
    for _, _, data in prepared:
        tail.expect(str(data["command_id"]), data.get("type"))
    sent = await send_commands(producer, topic, prepared, headers)
    deadline = time.monotonic() + timeout
    outcomes = []
    for _, _, data in prepared:
        outcomes.append(await tail.wait(str(data["command_id"]), max(deadline - time.monotonic(), 0.0)))
    return sent, outcomes
