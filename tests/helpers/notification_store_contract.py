"""One contract suite of the notifier's store of sent notifications (`service.notifier.ports.NotificationStore`),
run against every implementation as eventsourcing runs one abstract test case per backend:
`tests/unit/test_fake_notification_store.py` runs it against the in-memory fake,
`tests/integration/test_postgres_notification_store.py` against `PostgresNotificationStore` on a real Postgres.
A subclass provides a `backend` fixture: the store, and a reader of the records it keeps. The suite checks those
records through the reader, not only through the port, so a fake that merely echoes its arguments fails it.

What delivery relies on (`service/notifier/delivery.py`, DESIGN §7.2): a first claim is taken once per (event,
recipient) whatever its status; a deliberate resend takes the next attempt; the server's answer lands on the
claimed attempt only; a claim in doubt stays `sending`; only a `sending` claim is released."""

from __future__ import annotations

import uuid
from typing import Protocol

import pytest

from service.notifier.ports import NotificationStore

EVENT, OTHER_EVENT = uuid.UUID(int=1), uuid.UUID(int=2)
ANA, BEN = "ana@example.com", "ben@example.com"

Records = dict[tuple[uuid.UUID, str, int], tuple[str, str | None]]


class Backend(Protocol):
    """What a concrete suite provides: the port and a reader of the records it keeps."""

    store: NotificationStore

    async def records(self) -> Records:
        """Every record: (event id, recipient, attempt) -> (status, reason)."""


class NotificationStoreContract:
    """The behaviour every notification store keeps."""

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("a concrete suite provides the backend fixture")

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
