"""The notifier end to end: real broker, real Postgres, an aiosmtpd sink, `run_notifier` in this process."""

from __future__ import annotations

import uuid

from service.adapters.postgres import outbox
from service.adapters.postgres.connection import connect, create_pool
from service.adapters.postgres.notifications import PostgresNotificationStore
from service.adapters.smtp import Mailer, OutcomeUnknown, SmtpUnavailable
from service.contract.events import (
    OrderStatusChanged, OrderStatusChangeRejected, OrderStatusOverrideCompleted, OverrideResult, WireMessage,
    event_json, parse_status_changed,
)
from service.devkit.embedded import SmtpSink, free_port
from service.domain.model import Recipient
from service.notifier.delivery import deliver
from service.notifier.rendering import EVENT_ID_HEADER, render_email
from tests.helpers.cli import ok, run_cli_async, user_error
from tests.helpers.database import fetch, seed, url_of
from tests.helpers.events import WHEN, changed
from tests.helpers.probes import readiness
from tests.helpers.producing import produce
from tests.helpers.services import running_notifier
from tests.helpers.waiting import wait_until

ORDER, MARKER_ORDER = 501, 502
ANN, CARL, PM, MARKER = "ann@example.com", "carl@example.com", "pm@example.com", "marker@example.com"
RECIPIENTS = sorted([ANN, CARL, PM])
ORDERS = [
    {"order_id": ORDER, "order_type": "SO", "status": "Confirmed", "client_id": "c-1",
     "contacts": [{"email": ANN, "name": "Ann", "kind": "client"}, {"email": CARL, "kind": "client"},
                  {"email": PM, "name": "Pat", "kind": "stakeholder"}]},
    {"order_id": MARKER_ORDER, "order_type": "SO", "status": "Confirmed", "client_id": "c-2",
     "contacts": [{"email": MARKER, "kind": "stakeholder"}]},
]


async def publish(settings, *messages) -> None:
    """Events on the events topic, one at a time (keyed by order id, a summary by command id)."""
    await produce(settings, messages, settings.events_topic, separately=True)


def mails(sink, event: OrderStatusChanged | None = None) -> list:
    return [m for m in sink.messages if event is None or m[EVENT_ID_HEADER] == event.event_id]


def to(messages) -> list[str]:
    return sorted(m["To"].addresses[0].addr_spec for m in messages)


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


async def flush(settings, sink) -> None:
    """Publish a marker event and wait for its email: everything published before it has been handled
    (one partition, handled in order), so later asserts see the final state, not a race."""
    marker = changed(MARKER_ORDER)
    await publish(settings, marker)
    await wait_until(lambda: mails(sink, marker), what="the marker email")


async def records(settings) -> list[tuple]:
    rows = await fetch(settings, "SELECT event_id::text, recipient, attempt, status, reason FROM sent_notifications "
                                 "ORDER BY event_id, recipient, attempt")
    return [tuple(r) for r in rows]


async def test_recipients_and_content_rules(settings, mailbox):
    """Every contact gets one email naming order, statuses, actor and time; clients see public notes only."""
    await seed(settings, ORDERS, partitions=1)
    private = changed(ORDER, note="internal: payment disputed", public=False, version=1)
    public = changed(ORDER, note="Your parcel is on its way", public=True, version=2)
    async with running_notifier(settings):
        await publish(settings, private, public)
        await wait_until(lambda: len(mails(mailbox)) >= 6, what="six emails")
        await flush(settings, mailbox)
    for event in (private, public):
        assert to(mails(mailbox, event)) == RECIPIENTS
    for message in mails(mailbox, private) + mails(mailbox, public):
        assert message["From"] == settings.mail_from
        for content in (message["Subject"], text_of(message)):
            for expected in ("501", "Confirmed", "Ready to ship", "a staff", "2025-03-04 10:11:12 UTC"):
                assert expected in content, (expected, content)
        is_stakeholder = message["To"].addresses[0].addr_spec == PM
        assert ("payment disputed" in text_of(message)) == (is_stakeholder and message in mails(mailbox, private))
    for message in mails(mailbox, public):
        assert "on its way" in text_of(message)
    ann = next(m for m in mails(mailbox, private) if to([m]) == [ANN])
    assert ann["To"].addresses[0].display_name == "Ann" and "Dear Ann" in text_of(ann)
    rows = [r for r in await records(settings) if r[1] != MARKER]
    assert sorted(r[:4] for r in rows) == sorted((e.event_id, r, 1, "sent") for e in (private, public) for r in RECIPIENTS)
    assert all(r[4].startswith("250") for r in rows)  # the server's acceptance reply is kept


async def test_notify_false_rejections_and_summaries_send_nothing(settings, mailbox):
    """notify: false, OrderStatusChangeRejected and OrderStatusOverrideCompleted produce no email and no record."""
    await seed(settings, ORDERS, partitions=1)
    quiet = changed(ORDER, notify=False)
    rejected = OrderStatusChangeRejected(
        event_id=str(uuid.uuid4()), command_id=str(uuid.uuid4()), order_id=ORDER, requested_status=21,
        reason="cancel_has_payments", message="payments exist", actor={"id": "u-1", "role": "client"},
        occurred_at=WHEN,
    )
    summary = OrderStatusOverrideCompleted(
        event_id=str(uuid.uuid4()), command_id=str(uuid.uuid4()), occurred_at=WHEN, item_count=1,
        results=[OverrideResult(order_id=ORDER, status="OnHold", success=True)],
    )
    async with running_notifier(settings):
        await publish(settings, quiet, rejected, summary)
        await flush(settings, mailbox)
    assert to(mails(mailbox)) == [MARKER]
    assert [r[1] for r in await records(settings)] == [MARKER]


async def test_replay_of_events_topic_sends_nothing_twice(settings, mailbox):
    """A new consumer group re-reading the whole events topic sends no email a second time."""
    await seed(settings, ORDERS, partitions=1)
    first, second = changed(ORDER, version=1), changed(ORDER, version=2)
    async with running_notifier(settings):
        await publish(settings, first, second)
        await flush(settings, mailbox)
    assert len(mails(mailbox)) == 7
    replay = settings.model_copy(update={"notifier_group": f"{settings.notifier_group}-replay"})
    async with running_notifier(replay):
        await flush(replay, mailbox)  # handled after the replayed first, second and first marker
    assert len(mails(mailbox)) == 8
    for event in (first, second):
        assert to(mails(mailbox, event)) == RECIPIENTS
    assert all(r[2] == 1 for r in await records(settings))


async def test_resend_sends_once_more(settings, mailbox, cli_env):
    """`notifications resend` sends every recipient exactly one more email (attempt 2); errors are one line."""
    await seed(settings, ORDERS, partitions=1)
    event = changed(ORDER, note="resend me", public=True)
    conn = await connect(url_of(settings))
    try:  # the worker would have written it; resend reads the event from the outbox
        await outbox.insert(conn, [WireMessage(settings.events_topic, str(ORDER).encode(), event_json(event),
                                                 event_id=uuid.UUID(event.event_id), event_type=event.type,
                                                 order_id=ORDER)])
    finally:
        await conn.close()
    async with running_notifier(settings):
        await publish(settings, event)
        await wait_until(lambda: len(mails(mailbox, event)) == 3, what="the first three emails")

    def resend(*args):
        return run_cli_async(cli_env, "notifications", "resend", *args)

    done = ok(await resend(event.event_id))
    assert sorted(done.stdout.splitlines()) == [f"{r}: sent (attempt 2)" for r in RECIPIENTS]
    assert to(mails(mailbox, event)) == sorted(RECIPIENTS * 2)
    assert sorted((r[1], r[2], r[3]) for r in await records(settings)) == sorted(
        (r, a, "sent") for r in RECIPIENTS for a in (1, 2))

    user_error(await resend(str(uuid.uuid4())), "not found")
    user_error(await resend("not-a-uuid"))
    assert len(mails(mailbox)) == 6


async def test_smtp_down_then_up_loses_nothing(settings, mailbox):
    """With the SMTP server down the notifier pauses (readyz says smtp) and, once it is back, sends every email once."""
    await seed(settings, ORDERS, partitions=1)
    sink = SmtpSink(port=free_port()).start()
    sink.stop()
    http_port = free_port()
    down = settings.model_copy(update={"smtp_port": sink.port, "notifier_http_port": http_port})
    events = [changed(ORDER, version=v) for v in (1, 2, 3)]

    async def paused() -> str | None:
        return (await readiness(http_port))[1]["paused"]

    try:
        async with running_notifier(down):
            await publish(down, *events)
            reason = await wait_until(paused, what="the notifier to pause on the SMTP outage")
            assert reason.startswith("smtp")
            assert await records(down) == []
            sink.start()
            await wait_until(lambda: len(sink.messages) >= 9, what="nine emails after SMTP came back")
            await flush(down, sink)
            assert await paused() is None
    finally:
        sink.stop()
    for event in events:
        assert to(mails(sink, event)) == RECIPIENTS
    assert len(sink.messages) == 10
    assert {r[3] for r in await records(down)} == {"sent"}
    assert mails(mailbox) == []


async def test_permanent_refusal_is_recorded_and_blocks_nobody(settings, mailbox):
    """A 5xx for one recipient is recorded as failed with the reply; the others and later events still go out."""
    await seed(settings, ORDERS, partitions=1)
    mailbox.mailbox.refuse[CARL] = "550 5.1.1 no such user"
    first, second = changed(ORDER, version=1), changed(ORDER, version=2)
    async with running_notifier(settings):
        await publish(settings, first, second)
        await flush(settings, mailbox)
    for event in (first, second):
        assert to(mails(mailbox, event)) == [ANN, PM]
    carl = [r for r in await records(settings) if r[1] == CARL]
    assert sorted(carl) == sorted((e.event_id, CARL, 1, "failed", "550 5.1.1 no such user") for e in (first, second))


async def test_a_recipient_deferred_for_ever_is_recorded_after_bounded_tries(settings, mailbox):
    """A 4xx at RCPT TO for one recipient is retried a few times, then recorded failed (deferred); the others and
    later events still go out."""
    await seed(settings, ORDERS, partitions=1)
    mailbox.mailbox.refuse[CARL] = "450 4.2.1 mailbox busy, try later"
    first, second = changed(ORDER, version=1), changed(ORDER, version=2)
    async with running_notifier(settings):
        await publish(settings, first, second)
        await wait_until(lambda: len(mails(mailbox, second)) == 2, 60, what="the second event's emails")
        await flush(settings, mailbox)
    for event in (first, second):
        assert to(mails(mailbox, event)) == [ANN, PM]
    carl = [r for r in await records(settings) if r[1] == CARL]
    assert sorted(r[:4] for r in carl) == sorted((e.event_id, CARL, 1, "failed") for e in (first, second))
    assert all(r[4].startswith("deferred: 450 4.2.1 mailbox busy") for r in carl)


async def test_garbage_on_the_events_topic_does_not_stop_the_notifier(settings, mailbox):
    """Non-JSON, wrong shapes, a tombstone and malformed events are skipped; the next event is still emailed."""
    await seed(settings, ORDERS, partitions=1)
    good = changed(ORDER)
    bad_id = event_json(changed(ORDER)).replace(b'"event_id":"', b'"event_id":"x', 1)
    async with running_notifier(settings) as task:
        await publish(settings, b"not json", b"\xff\xfe\x00", b"[1, 2]", None, b'{"type": "OrderStatusChanged"}',
                      bad_id, b'{"type": "SomethingAddedLater", "event_id": "1"}', good)
        await wait_until(lambda: len(mails(mailbox, good)) == 3, what="the good event's emails")
        assert not task.done()
    assert len(mails(mailbox)) == 3


async def test_maybe_sent_email_is_never_resent_automatically(settings, mailbox):
    """A connection lost during DATA leaves a 'sending' claim later deliveries skip; a 4xx at DATA releases it for a retry."""
    await seed(settings, ORDERS, partitions=1)
    event = changed(ORDER)
    message = render_email(parse_status_changed(event_json(event)), Recipient(ANN, "Ann", "client"), settings.mail_from)
    event_id = uuid.UUID(event.event_id)

    class BrokenData(Mailer):
        def __init__(self, error):
            super().__init__(settings)
            self.error = error

        async def send_data(self, content):
            self.drop()
            raise self.error

    async def persist(write):
        return await write()

    pool = await create_pool(url_of(settings), size=2)
    store = PostgresNotificationStore(pool)
    try:
        temporary = BrokenData(SmtpUnavailable("451 4.3.0 try later"))
        try:
            await deliver(store, temporary, persist, event_id, ANN, message)
            raise AssertionError("a 4xx at DATA must propagate for a retry")
        except SmtpUnavailable:
            pass
        assert await records(settings) == []  # claim released: nothing was accepted

        lost = BrokenData(OutcomeUnknown("connection lost during DATA"))
        result = await deliver(store, lost, persist, event_id, ANN, message)
        assert result.outcome == "in_doubt"
        [(_, recipient, attempt, status, reason)] = await records(settings)
        assert (recipient, attempt, status) == (ANN, 1, "sending") and reason.startswith("outcome unknown")

        real = Mailer(settings)
        try:
            again = await deliver(store, real, persist, event_id, ANN, message)
        finally:
            await real.close()
        assert again.outcome == "duplicate"
        assert mails(mailbox) == []
    finally:
        await pool.close()
