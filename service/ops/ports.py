"""The ports the operators' use cases read the broker through; the entrypoints pass the Kafka implementations
(`adapters/kafka/groups.py`), so the use cases neither read settings nor open clients."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol


class GroupOffsets(Protocol):
    """A consumer group's committed offsets on one topic, read and written without joining the group."""

    def partitions(self) -> list[int]:
        """The topic's partitions (none: the topic does not exist)."""

    async def earliest(self, partitions: list[int]) -> dict[int, int]: ...

    async def latest(self, partitions: list[int]) -> dict[int, int]: ...

    async def first_at_or_after(self, partitions: list[int], stamp_ms: int) -> dict[int, int | None]:
        """The first offset whose record's timestamp is at or after `stamp_ms`; None when there is none."""

    async def committed(self, partition: int) -> int | None: ...

    async def commit(self, offsets: dict[int, int]) -> None: ...


class ConsumerGroups(Protocol):
    async def state(self, group: str) -> tuple[str, int]:
        """The group's state and how many live members it has."""

    def offsets(self, group: str, topic: str) -> AbstractAsyncContextManager[GroupOffsets]:
        """The group's offsets on `topic`, for the duration of the `async with`."""

    async def topic_configs(self, topics: list[str], names: tuple[str, ...]) -> dict[str, dict | None]:
        """The named configuration values of each topic as the broker reports them; None for a topic it refused
        to describe (one that does not exist)."""
