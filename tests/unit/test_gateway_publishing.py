"""The gateway's bounded publish (service/gateway/publishing.py): a send not acknowledged in time is NotPublished
but kept, and a retry of its command id waits on it instead of sending again. The real broker outage is shown in
tests/integration/test_gateway_outage.py."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from service.gateway.publishing import CommandPublisher, NotPublished


class HeldProducer:
    """Each send waits for the test to settle its acknowledgement (`acks[n]`), as a broker that is away would."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.acks: list[asyncio.Future] = []

    async def send_and_wait(self, topic: str, value=None, key=None, headers=None):
        self.sent.append(value)
        self.acks.append(asyncio.get_running_loop().create_future())
        return await self.acks[-1]


async def sends_made(producer: HeldProducer, count: int) -> None:
    """Until the producer has been asked for `count` sends (each publish starts its send in a task of its own)."""
    for _ in range(100):
        if len(producer.acks) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{len(producer.acks)} sends made, {count} expected")


class TestCommandPublisher:
    async def test_an_acknowledged_send_is_published_once(self):
        """The broker answers in time: one send, no error."""
        producer = HeldProducer()
        publisher = CommandPublisher(producer, "commands")
        publishing = asyncio.create_task(publisher.publish("c-1", b"v", b"k", [], 5))
        await sends_made(producer, 1)
        producer.acks[0].set_result(("commands", 0))
        await publishing
        assert producer.sent == [b"v"]

    async def test_a_retry_waits_on_the_send_given_up_on_and_never_sends_it_again(self):
        """No acknowledgement within the bound: NotPublished; retries (pending, then landed) send nothing new."""
        producer = HeldProducer()
        publisher = CommandPublisher(producer, "commands")
        with pytest.raises(NotPublished, match="within 0.05 s"):
            await publisher.publish("c-1", b"v", b"k", [], 0.05)
        with pytest.raises(NotPublished):  # still pending: the retry waits on it
            await publisher.publish("c-1", b"v", b"k", [], 0.05)
        producer.acks[0].set_result(("commands", 0))  # the broker is back and takes the first send
        await publisher.publish("c-1", b"v", b"k", [], 0.05)
        await publisher.publish("c-1", b"v", b"k", [], 0.05)
        assert producer.sent == [b"v"]

    async def test_a_send_that_failed_is_made_anew_on_retry(self):
        """The kept send failed for good (its batch expired): the retry sends the command again."""
        producer = HeldProducer()
        publisher = CommandPublisher(producer, "commands")
        with pytest.raises(NotPublished):
            await publisher.publish("c-1", b"v", b"k", [], 0.05)
        producer.acks[0].set_exception(KafkaConnectionError("broker gone"))
        retry = asyncio.create_task(publisher.publish("c-1", b"v", b"k", [], 5))
        await sends_made(producer, 2)
        producer.acks[1].set_result(("commands", 1))
        await retry
        assert producer.sent == [b"v", b"v"]

    async def test_an_outage_error_is_not_published_and_another_error_propagates(self):
        """A connection error within the bound is NotPublished (503); a message too large is no outage."""
        producer = HeldProducer()
        publisher = CommandPublisher(producer, "commands")
        failing = asyncio.create_task(publisher.publish("c-1", b"v", b"k", [], 5))
        await sends_made(producer, 1)
        producer.acks[0].set_exception(KafkaConnectionError("connection refused"))
        with pytest.raises(NotPublished, match="KafkaConnectionError"):
            await failing
        failing = asyncio.create_task(publisher.publish("c-2", b"v", b"k", [], 5))
        await sends_made(producer, 2)
        producer.acks[1].set_exception(MessageSizeTooLargeError())
        with pytest.raises(MessageSizeTooLargeError):
            await failing
