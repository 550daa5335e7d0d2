"""One contract suite of the notifier's store of sent notifications (`service.notifier.ports.NotificationStore`),
run against every implementation as eventsourcing runs one abstract test case per backend:
`tests/unit/test_fake_notification_store.py` runs it against the in-memory fake,
`tests/integration/test_postgres_notification_store.py` against `PostgresNotificationStore` on a real Postgres.
A subclass provides a `backend` fixture: the store, a reader of the records it keeps, and a writer of what the store
reads but never writes (an order's contacts, a published event). The suite checks the records through the reader,
not only through the port, so a fake that merely echoes its arguments fails it.

What delivery relies on (`service/notifier/delivery.py`, DESIGN §7.2): a first claim is taken once per (event,
recipient) whatever its status; a deliberate resend takes the next attempt; the server's answer lands on the
claimed attempt only; a claim in doubt stays `sending`; only a `sending` claim is released. And what the handler and
a resend read: an order's recipients as imported, a stored event byte for byte."""

from __future__ import annotations

import uuid
from typing import Protocol

from service.domain.model import Recipient
from service.notifier.ports import NotificationStore
from tests.helpers.contract_suite import ContractSuite

EVENT, OTHER_EVENT = uuid.UUID(int=1), uuid.UUID(int=2)
ANA, BEN = "ana@example.com", "ben@example.com"

Records = dict[tuple[uuid.UUID, str, int], tuple[str, str | None]]


class Backend(Protocol):
    """What a concrete suite provides: the port and a reader of the records it keeps."""

    store: NotificationStore

    async def records(self) -> Records:
        """Every record: (event id, recipient, attempt) -> (status, reason)."""

    async def import_order(self, order_id: int, contacts: list[dict]) -> None:
        """Import an SO order with these contacts (orders-file shape, DESIGN §5.2), as `orders import` does."""

    async def publish(self, event_id: uuid.UUID, payload: bytes) -> None:
        """Store an event's JSON as the worker does (the outbox row a resend reads)."""


class NotificationStoreContract(ContractSuite):
    """The behaviour every notification store keeps."""

    async def test_a_first_claim_takes_attempt_one_as_sending(self, backend):
        """claim_first returns 1 and records the pair as `sending` without a reason."""
        assert await backend.store.claim_first(EVENT, ANA) == 1
        assert await backend.records() == {(EVENT, ANA, 1): ("sending", None)}

    async def test_a_second_first_claim_of_the_pair_gets_nothing(self, backend):
        """A pair that has a record is never claimed again by claim_first (never send twice)."""
        await backend.store.claim_first(EVENT, ANA)
        assert await backend.store.claim_first(EVENT, ANA) is None
        assert await backend.records() == {(EVENT, ANA, 1): ("sending", None)}

    async def test_a_failed_record_also_blocks_a_first_claim(self, backend):
        """A refusal recorded by claim_first itself counts as a record of the pair."""
        assert await backend.store.claim_first(EVENT, ANA, "failed", "550 no such user") == 1
        assert await backend.store.claim_first(EVENT, ANA) is None
        assert await backend.records() == {(EVENT, ANA, 1): ("failed", "550 no such user")}

    async def test_claims_of_other_pairs_are_independent(self, backend):
        """Another recipient, or the same recipient for another event, takes its own attempt 1."""
        assert await backend.store.claim_first(EVENT, ANA) == 1
        assert await backend.store.claim_first(EVENT, BEN) == 1
        assert await backend.store.claim_first(OTHER_EVENT, ANA) == 1
        assert set(await backend.records()) == {(EVENT, ANA, 1), (EVENT, BEN, 1), (OTHER_EVENT, ANA, 1)}

    async def test_a_resend_takes_the_next_attempt(self, backend):
        """claim_next numbers attempts 1, 2, 3 for a pair and keeps the earlier records."""
        assert await backend.store.claim_next(EVENT, ANA) == 1
        await backend.store.finish(EVENT, ANA, 1, "sent", "250 ok")
        assert await backend.store.claim_next(EVENT, ANA) == 2
        assert await backend.store.claim_next(EVENT, ANA, "failed", "550 gone") == 3
        assert await backend.records() == {
            (EVENT, ANA, 1): ("sent", "250 ok"),
            (EVENT, ANA, 2): ("sending", None),
            (EVENT, ANA, 3): ("failed", "550 gone"),
        }

    async def test_finish_records_the_answer_on_that_attempt_only(self, backend):
        """finish changes the named attempt's status and reason and leaves the other attempts as they were."""
        await backend.store.claim_next(EVENT, ANA)
        await backend.store.claim_next(EVENT, ANA)
        await backend.store.finish(EVENT, ANA, 2, "failed", "554 rejected")
        assert await backend.records() == {
            (EVENT, ANA, 1): ("sending", None),
            (EVENT, ANA, 2): ("failed", "554 rejected"),
        }

    async def test_finish_of_an_attempt_never_claimed_writes_nothing(self, backend):
        """The answer on an attempt nobody claimed creates no record."""
        await backend.store.finish(EVENT, ANA, 1, "sent", "250 ok")
        assert await backend.records() == {}

    async def test_a_claim_in_doubt_stays_sending_with_its_reason(self, backend):
        """note_in_doubt keeps the claim (so nothing resends it by itself) and stores why."""
        await backend.store.claim_first(EVENT, ANA)
        await backend.store.note_in_doubt(EVENT, ANA, 1, "outcome unknown: connection lost")
        assert await backend.records() == {(EVENT, ANA, 1): ("sending", "outcome unknown: connection lost")}
        assert await backend.store.claim_first(EVENT, ANA) is None

    async def test_a_released_claim_may_be_claimed_again(self, backend):
        """release drops a `sending` claim, and the retry's claim_first takes attempt 1 again."""
        await backend.store.claim_first(EVENT, ANA)
        await backend.store.release(EVENT, ANA, 1)
        assert await backend.records() == {}
        assert await backend.store.claim_first(EVENT, ANA) == 1

    async def test_release_keeps_an_answered_record(self, backend):
        """A record already `sent` or `failed` is not released."""
        await backend.store.claim_first(EVENT, ANA)
        await backend.store.finish(EVENT, ANA, 1, "sent", "250 ok")
        await backend.store.claim_first(EVENT, BEN, "failed", "550 no such user")
        await backend.store.release(EVENT, ANA, 1)
        await backend.store.release(EVENT, BEN, 1)
        assert await backend.records() == {
            (EVENT, ANA, 1): ("sent", "250 ok"),
            (EVENT, BEN, 1): ("failed", "550 no such user"),
        }

    async def test_recorded_recipients_give_each_latest_attempts_status(self, backend):
        """recorded_recipients lists the event's recipients with the status of their highest attempt only."""
        await backend.store.claim_next(EVENT, ANA)
        await backend.store.finish(EVENT, ANA, 1, "failed", "554 rejected")
        await backend.store.claim_next(EVENT, ANA)
        await backend.store.claim_first(EVENT, BEN)
        await backend.store.finish(EVENT, BEN, 1, "sent", "250 ok")
        await backend.store.claim_first(OTHER_EVENT, ANA)
        assert await backend.store.recorded_recipients(EVENT) == {ANA: "sending", BEN: "sent"}
        assert await backend.store.recorded_recipients(uuid.UUID(int=3)) == {}

    async def test_recipients_are_the_orders_contacts_once_each(self, backend):
        """An order's contacts, one per address (the last import line wins), clients first, then by address; an
        order without contacts, or no order, has none."""
        await backend.import_order(7, [
            {"email": "pm@example.com", "kind": "stakeholder"},
            {"email": BEN, "name": "Ben", "kind": "client"},
            {"email": ANA, "name": "Ana (old)", "kind": "client"},
            {"email": ANA, "name": "Ana", "kind": "client"},
        ])
        await backend.import_order(8, [])
        assert await backend.store.recipients(7) == [
            Recipient(email=ANA, name="Ana", kind="client"),
            Recipient(email=BEN, name="Ben", kind="client"),
            Recipient(email="pm@example.com", name=None, kind="stakeholder"),
        ]
        assert await backend.store.recipients(8) == []
        assert await backend.store.recipients(9) == []

    async def test_a_stored_event_is_read_back_byte_for_byte(self, backend):
        """stored_event gives exactly the JSON stored for that event id, and None for an event never stored."""
        first, second = b'{"type": "OrderStatusChanged", "n": 1}', b'{"type": "OrderStatusChanged",  "n": 2}'
        await backend.publish(EVENT, first)
        await backend.publish(OTHER_EVENT, second)
        assert await backend.store.stored_event(EVENT) == first
        assert await backend.store.stored_event(OTHER_EVENT) == second
        assert await backend.store.stored_event(uuid.UUID(int=3)) is None
