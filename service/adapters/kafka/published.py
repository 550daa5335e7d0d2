"""The events already on the events topic from a time on, for the check of commands decided again after a
rewind (`service/worker/redecided.py`, issue 24). Read without a consumer group (`records.py`)."""

from __future__ import annotations

from service.adapters.kafka.config import KafkaSettings
from service.adapters.kafka.records import topic_records


class KafkaPublishedEvents:
    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self.settings = settings
        self.topic = topic

    async def since(self, stamp_ms: int) -> list[tuple[str, bytes]]:
        """(ce_id, value) of every record of the topic with a timestamp at or after `stamp_ms`, up to the end
        when reading starts."""
        found: list[tuple[str, bytes]] = []
        async with topic_records(self.settings, self.topic) as records:
            partitions = records.partitions()
            starts = await records.first_at_or_after(partitions, stamp_ms)
            bounds = await records.bounds(partitions)
            for partition in partitions:
                if starts[partition] is None:
                    continue
                async for record in records.read(partition, starts[partition], bounds[partition][1]):
                    event_id = next((value for name, value in record.headers if name == "ce_id"), None)
                    if event_id is not None and record.value is not None:
                        found.append((event_id.decode(errors="replace"), record.value))
        return found
