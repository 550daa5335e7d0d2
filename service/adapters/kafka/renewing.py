"""A producer that is replaced by a new one after the broker refused one of its sends (the gateway's and the
console's).

An idempotent aiokafka producer whose batch the broker refused for authorization (a Write ACL revoked while
it runs) cannot write that partition again: the refused batch took sequence numbers the broker never saw,
so every later batch is refused as OUT_OF_ORDER_SEQUENCE_NUMBER, even once the ACL is back. aiokafka has no
call that starts the sequences again, and asking for a new producer id in place
(`publishing.renew_producer_id`) stops its sender for good while the ACL is still missing (the broker
refuses InitProducerId to a user with no Write at all). So after a refusal the next send first starts a
new producer: while the ACL is missing that start is refused too (`KafkaRefused`, and the old producer is
kept), once it is back the new producer takes over and the old one is stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaProducer

from service.adapters.errors import KafkaRefused


class RenewingProducer:
    """`send`, `send_and_wait`, `start`, `stop` and `fetch_all_metadata` of the producer `make()` returns, renewed
    after a refused send."""

    def __init__(self, make: Callable[[], AIOKafkaProducer]) -> None:
        self._make = make
        self.current = make()
        self._refused = False
        self._renewing = asyncio.Lock()

    async def start(self) -> None:
        await self.current.start()

    async def stop(self) -> None:
        await self.current.stop()

    async def fetch_all_metadata(self):
        return await self.current.client.fetch_all_metadata()

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   **options) -> asyncio.Future:
        """As aiokafka's: the future of the broker's acknowledgement. A refusal, at once or by the acknowledgement,
        makes the next send start a new producer."""
        if self._refused:
            await self._renew()
        producer = self.current
        try:
            acknowledged = await producer.send(topic, value=value, key=key, **options)
        except KafkaRefused:
            self._was_refused(producer)
            raise

        # the caller's future settles only after a refusal is noted: a send right after it starts a new producer
        answer = asyncio.get_running_loop().create_future()

        def settled(ack: asyncio.Future) -> None:
            if answer.done():  # the caller cancelled its wait
                return
            if ack.cancelled():
                answer.cancel()
            elif ack.exception() is None:
                answer.set_result(ack.result())
            else:
                if isinstance(ack.exception(), KafkaRefused):
                    self._was_refused(producer)
                answer.set_exception(ack.exception())

        acknowledged.add_done_callback(settled)
        return answer

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None, **options):
        return await (await self.send(topic, value=value, key=key, **options))

    def _was_refused(self, producer) -> None:
        if producer is self.current:  # not already replaced after another send's refusal
            self._refused = True

    async def _renew(self) -> None:
        async with self._renewing:
            if not self._refused:  # a concurrent send renewed it meanwhile
                return
            fresh = self._make()
            try:
                await fresh.start()  # KafkaRefused while the user may still write nothing: the current one stays
            except BaseException:
                await fresh.stop()
                raise
            old, self.current, self._refused = self.current, fresh, False
        await old.stop()  # sends still in flight on it finish first
