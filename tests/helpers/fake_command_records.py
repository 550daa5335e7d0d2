"""The gateway's command records in memory (`service.gateway.ports.CommandRecords`), over the state `FakeUnitOfWork`
commits to a `FakeDatabase` as the Postgres adapter reads what `PostgresUnitOfWork` commits. It passes the same
contract suite as `PostgresCommandRecords` (`tests/helpers/command_records_contract.py`, run by
`tests/unit/test_fake_command_records.py`), in the manner of eventsourcing's per-backend test case."""

from __future__ import annotations

import json

from service.domain.events import event_id_for
from tests.helpers.fakes import FakeDatabase


class FakeCommandRecords:
    """Keys bound in a dict (the first binding wins); outcomes read from the fake database's processed records
    and outbox, a command's events found by their deterministic ids as the Postgres adapter finds them."""

    def __init__(self, db: FakeDatabase, max_events: int) -> None:
        self.db = db
        self.max_events = max_events
        self.keys: dict[str, str] = {}  # command id -> the fingerprint of its first request

    async def bind_key(self, command_id: str, fingerprint: str) -> str:
        return self.keys.setdefault(command_id, fingerprint)

    async def outcome(self, command_id: str) -> dict | None:
        record = self.db.processed.get(command_id)
        if record is None:
            return None
        ids = {event_id_for(command_id, n) for n in range(self.max_events)}
        return {
            "command_id": command_id,
            "command_type": record.command_type,
            "outcome": record.outcome,
            "processed_at": record.processed_at.isoformat(),
            "events": [json.loads(m.value) for m in self.db.outbox if m.event_id in ids],
        }
