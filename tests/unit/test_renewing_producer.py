"""The gateway's producer after a refused send (service/adapters/kafka/renewing.py): the next send starts a new
producer first, keeps the old one while that start is refused, and stops the old one once the new one took over.
The real refusal and sequence gap are shown on Apache Kafka (tests/apache_kafka/test_apache_security.py)."""

from __future__ import annotations

import asyncio

import pytest

from service.adapters.errors import KafkaRefused
from service.adapters.kafka.renewing import RenewingProducer


class FakeProducer:
    """Records what was sent; `refuse_sends` / `refuse_start` make the broker say no."""

    def __init__(self, name: str, refuse_sends: bool = False, refuse_start: bool = False) -> None:
        self.name, self.refuse_sends, self.refuse_start = name, refuse_sends, refuse_start
        self.sent: list[bytes] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        if self.refuse_start:
            raise KafkaRefused(f"{self.name}: InitProducerId not authorised")
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value=None, key=None, **options) -> asyncio.Future:
        """The acknowledgement's future, settled later (as the broker answers): the refusal comes through it."""
        ack = asyncio.get_running_loop().create_future()
        if self.refuse_sends:
            asyncio.get_running_loop().call_soon(ack.set_exception,
                                                 KafkaRefused(f"{self.name}: topic {topic} not authorised"))
        else:
            self.sent.append(value)
            asyncio.get_running_loop().call_soon(ack.set_result, (topic, len(self.sent) - 1))
        return ack


def renewing(*producers: FakeProducer) -> tuple[RenewingProducer, list[FakeProducer]]:
    made: list[FakeProducer] = []
    queue = list(producers)

    def make() -> FakeProducer:
        made.append(queue.pop(0))
        return made[-1]

    return RenewingProducer(make), made


class TestRenewingProducer:
    async def test_sends_go_through_one_producer_while_none_is_refused(self):
        """No refusal, no new producer: every send on the first one."""
        producer, made = renewing(FakeProducer("first"))
        await producer.start()
        assert await producer.send_and_wait("commands", b"a") == ("commands", 0)
        assert await producer.send_and_wait("commands", b"b") == ("commands", 1)
        assert [p.name for p in made] == ["first"] and made[0].sent == [b"a", b"b"]

    async def test_after_a_refused_send_the_next_one_goes_through_a_new_producer(self):
        """The refusal propagates; the next send starts a second producer, sends on it, and stops the first."""
        producer, made = renewing(FakeProducer("first", refuse_sends=True), FakeProducer("second"))
        await producer.start()
        with pytest.raises(KafkaRefused, match="first: topic commands"):
            await producer.send_and_wait("commands", b"a")
        assert await producer.send_and_wait("commands", b"b") == ("commands", 0)
        first, second = made
        assert first.stopped and second.started and second.sent == [b"b"] and producer.current is second

    async def test_a_refused_start_keeps_the_old_producer_and_is_tried_again(self):
        """While the new producer's start is refused the send fails with that refusal and the old producer stays
        (not stopped); the send after it starts yet another one."""
        producer, made = renewing(FakeProducer("first", refuse_sends=True), FakeProducer("second", refuse_start=True),
                                  FakeProducer("third"))
        await producer.start()
        with pytest.raises(KafkaRefused, match="first"):
            await producer.send_and_wait("commands", b"a")
        with pytest.raises(KafkaRefused, match="second: InitProducerId"):
            await producer.send_and_wait("commands", b"b")
        assert producer.current is made[0] and not made[0].stopped and made[1].stopped
        assert await producer.send_and_wait("commands", b"c") == ("commands", 0)
        assert producer.current is made[2] and made[0].stopped and made[2].sent == [b"c"]

    async def test_a_refusal_by_the_acknowledgement_renews_for_the_next_send(self):
        """`send` (the DLQ redrive's call): the refusal arrives by the acknowledgement's future, and the very next
        send already goes through a new producer."""
        producer, made = renewing(FakeProducer("first", refuse_sends=True), FakeProducer("second"))
        await producer.start()
        refused = await producer.send("commands", b"a")
        with pytest.raises(KafkaRefused, match="first"):
            await refused
        assert await (await producer.send("commands", b"b")) == ("commands", 0)
        assert producer.current is made[1] and made[0].stopped and made[1].sent == [b"b"]
