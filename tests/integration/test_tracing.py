"""Tracing (DESIGN §11): a trace id flows from a command's `traceparent` header to its event and to the
email, with spans for the batch, the transaction, the command, the publish, the notify and the SMTP send."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.notifier.rendering import TRACEPARENT_HEADER
from service.runtime import tracing
from tests.helpers.commands import change
from tests.helpers.database import seed
from tests.helpers.producing import produce
from tests.helpers.services import running_notifier, running_worker
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans():
    """Trace through an in-memory exporter for this test, then turn tracing off again."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.use(None)


async def test_a_trace_flows_from_the_command_to_the_event_and_the_email(settings, mailbox, spans):
    """The event's and the email's traceparent carry the command's trace id; the spans of the batch,
    the transaction, the command, the publish, the notification and the SMTP send were recorded."""
    await seed(settings)
    command = change(1029, 21, role="client", client_id="c-1", note={"text": "Cancel please", "is_public": True})
    async with running_worker(settings), running_notifier(settings), \
            TopicReader(settings, settings.events_topic) as events:
        await produce(settings, [command], headers=[("traceparent", INCOMING.encode())])
        await events_for(events, {command["command_id"]})
        await wait_until(lambda: mailbox.messages, 30, "the email")
    [record] = [r for r in events.records if b'"OrderStatusChanged"' in r.value]
    event_trace = dict(record.headers)["traceparent"].decode()
    assert event_trace.split("-")[1] == TRACE_ID and event_trace != INCOMING  # our span, in their trace
    emails = mailbox.messages
    assert emails and all(m[TRACEPARENT_HEADER].split("-")[1] == TRACE_ID for m in emails)
    names = {s.name for s in spans.get_finished_spans()}
    assert {"batch", "transaction", "command", "publish", "notify", "smtp send"} <= names
    traced = {s.name for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == TRACE_ID}
    assert {"command", "notify", "smtp send"} <= traced


async def test_with_tracing_off_an_incoming_traceparent_still_travels(settings):
    """Off (no OTEL endpoint), nothing is started, but the command's traceparent reaches its event."""
    await seed(settings)
    command = change(1033, "Confirmed")
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as events:
        await produce(settings, [command], headers=[("traceparent", INCOMING.encode())])
        await events_for(events, {command["command_id"]})
    [record] = events.records
    assert dict(record.headers)["traceparent"].decode() == INCOMING


def test_only_a_well_formed_traceparent_is_read():
    """A malformed or binary traceparent header is ignored, never propagated."""
    assert tracing.traceparent_of([("traceparent", INCOMING.encode())]) == INCOMING
    for bad in (b"garbage", b"\xff\xfe", None, b"00-" + b"g" * 32 + b"-00f067aa0ba902b7-01"):
        assert tracing.traceparent_of([("traceparent", bad)]) is None
