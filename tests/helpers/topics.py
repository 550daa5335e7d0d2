"""Reading what the service published: a topic from the beginning, without a consumer group
(the reader of the shared kit, testkit.topics, with the tests' JSON view and waiting)."""

from __future__ import annotations

import json

from service.runtime.settings import Settings
from testkit import topics
from tests.helpers.waiting import wait_until


class TopicReader(topics.TopicReader):
    """Reads a topic from the beginning, without a group, accumulating every record."""

    def __init__(self, settings: Settings, topic: str) -> None:
        super().__init__(settings.kafka_bootstrap_servers, topic)
        self.settings = settings

    def values(self) -> list[dict]:
        """Each record's JSON value; a record that is not a JSON object (a dead letter) reads as {}."""
        parsed = []
        for record in self.records:
            try:
                value = json.loads(record.value)
            except (ValueError, TypeError, RecursionError):  # dead letters can be any bytes
                value = None
            parsed.append(value if isinstance(value, dict) else {})
        return parsed

    async def wait_for(self, predicate, timeout: float = 30.0, what: str = "records") -> list[dict]:
        """Poll until `predicate(values)` holds; returns the values."""

        async def probe():
            await self.poll()
            return predicate(self.values())

        try:
            await wait_until(probe, timeout, what, interval=0)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; have {len(self.records)}: {self.values()[-5:]}") from None
        return self.values()


async def events_for(reader: TopicReader, command_ids: set[str], timeout: float = 30.0) -> list[dict]:
    """Wait until every command id has at least one event, and return the events of those commands."""

    def done(values):
        return command_ids <= {v.get("command_id") for v in values}

    values = await reader.wait_for(done, timeout, f"events of {len(command_ids)} commands")
    return [v for v in values if v.get("command_id") in command_ids]
