"""The gateway's publish of a command: bounded in time, and made once per command id while an earlier send of it
may still reach the broker.

A broker outage (stopped, unreachable, frozen) does not fail a send at once: aiokafka keeps the batch and retries it
until its request timeout (an idempotent producer retries for ever). The gateway cannot hold its caller that long,
so it gives up waiting after `within_s` and answers 503 — but the batch stays in the producer and may still reach
the broker once it is back. A retry of that request (same Idempotency-Key, so the same command id) must not
publish the command a second time: the unsettled send is kept here by command id, and a retry waits on it instead
of sending again; only a send that failed (or none) is made anew. The worker would apply a second copy once anyway
(DESIGN §7.2); this keeps the copies this replica can avoid off the commands topic. Another replica does not know
this one's sends: a retry served there may publish a copy, which the worker applies once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from service.adapters.errors import AccessRefused
from service.runtime.faults import dependency_of


class NotPublished(Exception):
    """The broker did not take the command within the bound (an outage): the caller may retry later."""


class CommandPublisher:
    """`publish` of one command on the commands topic through `producer` (aiokafka's `send_and_wait`)."""

    def __init__(self, producer, topic: str, keep: int = 10_000) -> None:
        self.producer = producer
        self.topic = topic
        self.keep = keep  # at most this many sends given up on are remembered (the oldest are forgotten first)
        self._unsettled: OrderedDict[str, asyncio.Future] = OrderedDict()

    async def publish(self, command_id: str, value: bytes, key: bytes | None, headers: list, within_s: float) -> None:
        """Publish the command, or wait on the earlier send of it that was given up on; `NotPublished` when the
        broker has not acknowledged it within `within_s` (or failed it for an outage), `AccessRefused` as the
        producer raises it."""
        sending = self._unsettled.get(command_id)  # kept after it lands too: a later retry sends nothing either
        if sending is None or (sending.done() and (sending.cancelled() or sending.exception() is not None)):
            self._unsettled.pop(command_id, None)  # it failed: send anew (a copy that landed anyway is applied once)
            sending = asyncio.ensure_future(self.producer.send_and_wait(self.topic, value=value, key=key,
                                                                        headers=headers))
        try:
            # shielded: a send given up on is not withdrawn from the producer (it cannot be), only no longer awaited
            await asyncio.wait_for(asyncio.shield(sending), within_s)
        except AccessRefused:
            raise
        except asyncio.TimeoutError:
            self._remember(command_id, sending)
            raise NotPublished(f"no acknowledgement from Kafka within {within_s:g} s") from None
        except asyncio.CancelledError:  # the caller went away: the send may still land
            self._remember(command_id, sending)
            raise
        except Exception as exc:
            if dependency_of(exc) is None:
                raise
            raise NotPublished(f"Kafka unavailable: {type(exc).__name__}: {exc}") from exc

    def _remember(self, command_id: str, sending: asyncio.Future) -> None:
        if not sending.done():
            sending.add_done_callback(_retrieved)  # a failure nobody awaits any more is no "never retrieved" error
        self._unsettled[command_id] = sending
        self._unsettled.move_to_end(command_id)
        while len(self._unsettled) > self.keep:
            self._unsettled.popitem(last=False)


def _retrieved(sending: asyncio.Future) -> None:
    if not sending.cancelled():
        sending.exception()
