"""Outcome events of commands, read from the events topic (request-reply over Kafka, DESIGN §11).

`EventsTail` reads the events topic without a consumer group (every reader sees every event, so any
gateway replica or CLI can wait for any command), from the end as it was when it started, and hands
each event to whoever waits for its command id. Start it BEFORE publishing the command, so the
outcome cannot slip past between the publish and the first read. What the events mean is the contract's
`Outcome` (`service.contract.outcome`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiokafka import TopicPartition

from service.adapters.errors import TopicMissing
from service.adapters.kafka.clients import consumer_of, learn_topic
from service.adapters.kafka.consumer import stop_despite_outage
from service.contract.json_text import parse_json
from service.contract.outcome import Outcome
from service.adapters.kafka.config import KafkaSettings


class EventsTail:
    def __init__(self, settings: KafkaSettings, *, from_beginning: bool = False) -> None:
        self.topic = settings.events_topic
        self.from_beginning = from_beginning
        self._consumer = consumer_of(settings, group_id=None, enable_auto_commit=False,
                                     auto_offset_reset="earliest" if from_beginning else "latest",
                                     fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms)
        self._waiting: dict[str, tuple[Outcome, asyncio.Event]] = {}
        self._waiters: dict[str, int] = {}  # how many requests wait for each command id
        self._task: asyncio.Task | None = None
        self._started = False

    async def start(self) -> "EventsTail":
        """Join the topic's partitions at their current end (or beginning); returns once positioned.
        Raises `TopicMissing` while the topic does not exist; a later call tries again."""
        if not self._started:
            await self._consumer.start()
            self._started = True
        await learn_topic(self._consumer, self.topic)
        partitions = self._consumer.partitions_for_topic(self.topic) or set()
        if not partitions:
            raise TopicMissing(self.topic)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        if self.from_beginning:
            await self._consumer.seek_to_beginning(*tps)
        else:
            await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the positions now: events after this point are ours to see
            await self._consumer.position(tp)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await stop_despite_outage(self._consumer)  # the gateway stopped during a broker outage still exits 0

    async def records(self, poll_ms: int = 200) -> AsyncIterator[tuple[object, dict | None]]:
        """Every record from the position on, with its JSON object (None when the value is not one)."""
        while True:
            batch = await self._consumer.getmany(timeout_ms=poll_ms)
            for messages in batch.values():
                for message in messages:
                    yield message, _json_object(message.value)

    def expect(self, command_id: str, command_type: str | None) -> None:
        """Register interest in a command's events before it is published; every `expect` is ended by one
        `wait` or one `forget` (two requests may wait for one command: the entry stays until both are done)."""
        self._waiting.setdefault(command_id, (Outcome(command_id, command_type), asyncio.Event()))
        self._waiters[command_id] = self._waiters.get(command_id, 0) + 1
        if self._task is None:
            self._task = asyncio.create_task(self._dispatch(), name="events-tail")

    def forget(self, command_id: str) -> None:
        """End one `expect` without waiting (the publish failed); the entry goes with its last waiter."""
        left = self._waiters.get(command_id, 0) - 1
        if left > 0:
            self._waiters[command_id] = left
        else:
            self._waiters.pop(command_id, None)
            self._waiting.pop(command_id, None)

    async def wait(self, command_id: str, timeout: float) -> Outcome:
        """The command's outcome once final, or what was seen by the deadline (final=False)."""
        outcome, done = self._waiting[command_id]
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self.forget(command_id)
        return outcome

    @property
    def stopped(self) -> str | None:
        """Why the events reader stopped (readiness turns red on it), None while it reads or was never needed."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        error = task.exception()
        return f"events reader stopped: {type(error).__name__}" if error is not None else "events reader stopped"

    async def _dispatch(self) -> None:
        """Hand each event to its waiter; parsing is total: no event, whatever it holds, stops the reader."""
        async for _, event in self.records():
            command_id = event.get("command_id") if event is not None else None
            if not isinstance(command_id, str):
                continue
            waiting = self._waiting.get(command_id)
            if waiting is None:
                continue
            outcome, done = waiting
            if outcome.add(event):  # total: whatever a hostile event of the awaited command holds
                done.set()


def _json_object(value: bytes | None) -> dict | None:
    try:
        data = parse_json(value) if value is not None else None
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
