"""The notifier's event handler, delivery and resend over the fake notification store and the fake mailer (no
Postgres, no SMTP): never sent twice, in-doubt kept, refusals recorded, a deliberate resend a new attempt."""

from __future__ import annotations

import uuid

import pytest

from service.adapters.smtp import OutcomeUnknown, RecipientDeferred, SmtpUnavailable
from service.contract.events import event_json, parse_status_changed
from service.notifier.handlers import RECIPIENT_DEFERRALS, EventHandler
from service.notifier.resend import ResendError, resend
from service.runtime.health import Progress
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry
from tests.helpers.events import changed
from tests.helpers.fake_mailer import ACCEPTED, FakeMailer
from tests.helpers.fake_notifications import FakeNotificationStore

ORDER = 1029
ANN, PM = "ann@example.com", "pm@example.com"
MAIL_FROM = "orders@example.com"


class Notifier:
    """The handler wired as the notifier app wires it, over the two fakes."""

    def __init__(self) -> None:
        self.store = FakeNotificationStore()
        self.store.add_contacts(ORDER, [{"email": PM, "kind": "stakeholder"},
                                        {"email": ANN, "name": "Ann", "kind": "client"}])
        self.mailer = FakeMailer()
        metrics = Metrics("notifier")
        self.handler = EventHandler(self.store, self.mailer, MAIL_FROM, metrics,
                                    OutageRetry(0.001, 0.001, metrics, Progress(60)))

    def records(self, event_id) -> dict[tuple[str, int], tuple[str, str | None]]:
        """(recipient, attempt) -> (status, reason) of the event's records."""
        return {(recipient, attempt): (record.status, record.reason)
                for (e, recipient, attempt), record in self.store.records.items() if e == event_id}

    def sent_to(self) -> list[str]:
        """The address of each accepted message, in the order the server took them."""
        return [message["To"].addresses[0].addr_spec for message in self.mailer.messages]


@pytest.fixture
def notifier() -> Notifier:
    return Notifier()


def event(**options):
    """An OrderStatusChanged of ORDER as the worker publishes it, and its event id."""
    found = changed(ORDER, **options)
    return event_json(found), uuid.UUID(found.event_id)


class TestNeverTwice:
    async def test_each_recipient_gets_one_email_recorded_sent(self, notifier):
        """Client and stakeholder each get one message; each pair is recorded `sent` with the server's reply."""
        value, event_id = event()
        assert await notifier.handler.handle(value) == "notified"
        assert sorted(notifier.sent_to()) == [ANN, PM]
        assert notifier.records(event_id) == {(ANN, 1): ("sent", ACCEPTED), (PM, 1): ("sent", ACCEPTED)}

    async def test_a_replayed_event_sends_nothing_again(self, notifier):
        """The same event handled again (a replayed topic) finds every pair recorded and sends nothing."""
        value, event_id = event()
        await notifier.handler.handle(value)
        await notifier.handler.handle(value)
        assert sorted(notifier.sent_to()) == [ANN, PM]
        assert set(notifier.records(event_id)) == {(ANN, 1), (PM, 1)}

    async def test_notify_false_sends_and_records_nothing(self, notifier):
        """An event with notify: false is passed over (R10)."""
        value, _ = event(notify=False)
        assert await notifier.handler.handle(value) == "notify_false"
        assert (notifier.sent_to(), notifier.store.records) == ([], {})


class TestInDoubt:
    async def test_a_claim_left_sending_is_never_sent_by_itself(self, notifier):
        """A `sending` record left by a notifier killed inside DATA: that recipient is in doubt and gets nothing."""
        value, event_id = event()
        await notifier.store.claim_first(event_id, ANN)
        assert await notifier.handler.notify(parse_status_changed(value)) == {"in_doubt": 1, "sent": 1}
        assert notifier.sent_to() == [PM]
        assert notifier.records(event_id)[ANN, 1] == ("sending", None)

    async def test_a_connection_lost_in_data_keeps_the_claim_and_says_why(self, notifier):
        """DATA without an answer leaves the claim `sending` with the reason, and a replay does not resend it."""
        value, event_id = event()
        notifier.mailer.fail_data[ANN] = OutcomeUnknown("connection lost during DATA: reset by peer")
        assert await notifier.handler.notify(parse_status_changed(value)) == {"in_doubt": 1, "sent": 1}
        assert await notifier.handler.notify(parse_status_changed(value)) == {"in_doubt": 1, "duplicate": 1}
        assert notifier.sent_to() == [PM]
        assert notifier.records(event_id)[ANN, 1] == (
            "sending", "outcome unknown: connection lost during DATA: reset by peer")

    async def test_a_message_certainly_not_taken_is_released_and_sent_on_the_retry(self, notifier):
        """A 4xx at DATA drops the claim and propagates (the event is retried); the retry sends it once."""
        value, event_id = event()
        notifier.mailer.fail_data[ANN] = SmtpUnavailable("451 local error")
        with pytest.raises(SmtpUnavailable):
            await notifier.handler.handle(value)
        assert (ANN, 1) not in notifier.records(event_id)
        await notifier.handler.handle(value)
        assert sorted(notifier.sent_to()) == [ANN, PM]
        assert notifier.records(event_id)[ANN, 1] == ("sent", ACCEPTED)


class TestRefusals:
    async def test_a_refused_recipient_is_recorded_failed_and_the_others_get_theirs(self, notifier):
        """A 5xx at RCPT TO is recorded `failed` with the reply, never retried by a replay; the stakeholder is mailed."""
        value, event_id = event()
        notifier.mailer.refuse[ANN] = "550 no such user"
        await notifier.handler.handle(value)
        del notifier.mailer.refuse[ANN]
        await notifier.handler.handle(value)
        assert notifier.sent_to() == [PM]
        assert notifier.records(event_id) == {(ANN, 1): ("failed", "550 no such user"), (PM, 1): ("sent", ACCEPTED)}

    async def test_a_recipient_deferred_too_often_is_recorded_failed(self, notifier):
        """A 4xx at RCPT TO is retried with the event; at the last try it is recorded failed and the rest goes on."""
        value, event_id = event()
        notifier.mailer.refuse[ANN] = "450 mailbox busy"
        for _ in range(RECIPIENT_DEFERRALS - 1):
            with pytest.raises(RecipientDeferred):
                await notifier.handler.handle(value)
            assert notifier.records(event_id) == {}
        assert await notifier.handler.handle(value) == "notified"
        assert notifier.sent_to() == [PM]
        status, reason = notifier.records(event_id)[ANN, 1]
        assert (status, reason.startswith("deferred: 450 mailbox busy")) == ("failed", True)


class TestResend:
    async def test_a_resend_is_a_new_attempt_for_every_recipient(self, notifier):
        """After the first emails, a deliberate resend of the stored event sends each again as attempt 2."""
        value, event_id = event()
        notifier.store.events[event_id] = value
        await notifier.handler.handle(value)
        results = await resend(notifier.store, notifier.mailer, MAIL_FROM, event_id)
        assert sorted((r.recipient, r.outcome, r.attempt) for r in results) == [(ANN, "sent", 2), (PM, "sent", 2)]
        assert sorted(notifier.sent_to()) == [ANN, ANN, PM, PM]

    async def test_a_resend_also_sends_an_email_in_doubt(self, notifier):
        """The operator's way out of doubt: the `sending` claim stays, a new attempt is sent."""
        value, event_id = event()
        notifier.store.events[event_id] = value
        await notifier.store.claim_first(event_id, ANN)
        [ann] = [r for r in await resend(notifier.store, notifier.mailer, MAIL_FROM, event_id) if r.recipient == ANN]
        assert (ann.outcome, ann.attempt) == ("sent", 2)
        assert notifier.records(event_id)[ANN, 1] == ("sending", None)

    async def test_an_event_not_stored_or_without_emails_is_refused(self, notifier):
        """A missing event and a notify: false event are one-line refusals, and nothing is sent."""
        value, event_id = event(notify=False)
        with pytest.raises(ResendError, match="not found"):
            await resend(notifier.store, notifier.mailer, MAIL_FROM, event_id)
        notifier.store.events[event_id] = value
        with pytest.raises(ResendError, match="notify: false"):
            await resend(notifier.store, notifier.mailer, MAIL_FROM, event_id)
        assert (notifier.sent_to(), notifier.store.records) == ([], {})
