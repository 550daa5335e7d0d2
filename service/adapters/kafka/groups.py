"""`ops.ports.ConsumerGroups` on the broker: each call opens and closes its own admin client or group-less
consumer (`admin.py`), made from the settings the entrypoint passes."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from service.adapters.kafka.admin import GroupOffsets, group_offsets, group_state, topic_configs
from service.adapters.kafka.config import KafkaSettings


class KafkaConsumerGroups:
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings

    async def state(self, group: str) -> tuple[str, int]:
        return await group_state(self.settings, group)

    def offsets(self, group: str, topic: str) -> AbstractAsyncContextManager[GroupOffsets]:
        return group_offsets(self.settings, group, topic)

    async def topic_configs(self, topics: list[str], names: tuple[str, ...]) -> dict[str, dict | None]:
        return await topic_configs(self.settings, topics, names)
