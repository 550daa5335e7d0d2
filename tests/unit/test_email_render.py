"""Email content rules (R10) and header safety, without SMTP or any other service."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from email import message_from_bytes, policy

import pytest

from service.messages import ActorModel, EventNote, OrderStatusChanged, StatusRefModel
from service.notifier.email_render import EVENT_ID_HEADER, InvalidRecipient, Recipient, render_email
from service.notifier.parse import Unparseable, parse_notifiable

CLIENT = Recipient("ann@example.com", "Ann", "client")
STAKEHOLDER = Recipient("pm@example.com", None, "stakeholder")


def event(**changes) -> OrderStatusChanged:
    fields = dict(
        event_id=str(uuid.uuid4()), command_id=str(uuid.uuid4()), order_id=1029, order_type="SO", version=4,
        from_status=StatusRefModel(id=2, code="Confirmed", name="Confirmed"),
        to_status=StatusRefModel(id=21, code="CancelledByClient", name="Cancelled"),
        override=False, notify=True, actor=ActorModel(id="u-7", role="staff"),
        note=EventNote(text="Customer asked to cancel", is_public=False),
        removed_reservations=["R-1"], removed_coupons=["SPRING10"],
        occurred_at=datetime(2025, 3, 4, 10, 11, 12, tzinfo=timezone.utc),
    )
    fields.update(changes)
    return OrderStatusChanged(**fields)


def parts(message) -> tuple[str, str]:
    """The plain-text and HTML bodies, after a round trip through bytes as the server sees them."""
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    return parsed.get_body(("plain",)).get_content(), parsed.get_body(("html",)).get_content()


def test_subject_and_both_parts_name_order_statuses_actor_and_time():
    """Subject, text and HTML each name the order, the old and new status, the actor and the time."""
    message = render_email(event(), CLIENT, "orders@example.com")
    text, html = parts(message)
    for content in (message["Subject"], text, html):
        for expected in ("1029", "Confirmed", "Cancelled", "u-7", "2025-03-04 10:11:12 UTC"):
            assert expected in content, (expected, content)
    assert message["From"] == "orders@example.com"
    assert message["To"] == "Ann <ann@example.com>"
    assert message.get_content_type() == "multipart/alternative"


def test_client_sees_only_public_notes_and_stakeholder_sees_all():
    """R10: a private note reaches stakeholders only; a public note reaches everybody."""
    private = event(note=EventNote(text="internal: payment disputed", is_public=False))
    public = event(note=EventNote(text="Your order was cancelled as requested", is_public=True))
    for content in parts(render_email(private, CLIENT, "orders@example.com")):
        assert "payment disputed" not in content
    for content in parts(render_email(private, STAKEHOLDER, "orders@example.com")):
        assert "payment disputed" in content
    for recipient in (CLIENT, STAKEHOLDER):
        for content in parts(render_email(public, recipient, "orders@example.com")):
            assert "cancelled as requested" in content


def test_html_part_escapes_user_text():
    """Note text is autoescaped in HTML, so a note cannot inject markup."""
    hostile = event(note=EventNote(text='<script>alert("x")</script> & more', is_public=True))
    text, html = parts(render_email(hostile, CLIENT, "orders@example.com"))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html and "&amp; more" in html
    assert '<script>alert("x")</script> & more' in text  # plain text is not HTML: shown as written


def test_header_values_cannot_break_lines():
    """CR/LF in event text (actor id, status name) never produces extra headers."""
    hostile = event(
        actor=ActorModel(id="u-7\r\nBcc: victim@example.com", role="staff"),
        to_status=StatusRefModel(id=21, code="X", name="Cancelled\nX-Injected: yes"),
    )
    message = render_email(hostile, Recipient("ann@example.com", "Ann\r\nCc: x@example.com", "client"),
                           "orders@example.com")
    wire = message.as_bytes()
    parsed = message_from_bytes(wire, policy=policy.default)
    assert parsed["Bcc"] is None and parsed["Cc"] is None and parsed["X-Injected"] is None
    assert "\n" not in parsed["Subject"] and "\r" not in parsed["Subject"]
    assert parsed["To"].addresses[0].addr_spec == "ann@example.com"


@pytest.mark.parametrize("bad", ["ann@example.com\r\nRCPT TO:<x@y>", "no-at-sign", "a b@example.com", "", "ü@example.com"])
def test_undeliverable_addresses_are_refused(bad):
    """An address that could inject SMTP commands or headers is refused before anything is sent."""
    with pytest.raises(InvalidRecipient):
        render_email(event(), Recipient(bad, None, "client"), "orders@example.com")


def test_event_id_header_and_7bit_transfer():
    """Each email carries its event id, and the wire form is 7-bit clean (no 8BITMIME needed)."""
    e = event(note=EventNote(text="Größe geändert — ✓", is_public=True))
    message = render_email(e, CLIENT, "orders@example.com")
    assert message[EVENT_ID_HEADER] == e.event_id
    assert message.as_bytes().isascii()
    assert "Größe geändert — ✓" in parts(message)[0]


def test_stakeholder_sees_released_reservations_client_does_not():
    """Reservation refs and coupon codes are internal: only stakeholders see them."""
    assert "R-1" in parts(render_email(event(), STAKEHOLDER, "orders@example.com"))[0]
    assert "R-1" not in parts(render_email(event(), CLIENT, "orders@example.com"))[0]


def test_parse_notifiable_sorts_events():
    """Only OrderStatusChanged is notifiable; other events are ignored; garbage is Unparseable."""
    e = event()
    assert parse_notifiable(e.model_dump_json().encode()) == e
    assert parse_notifiable(b'{"type": "OrderStatusChangeRejected", "event_id": "x"}') is None
    assert parse_notifiable(b'{"type": "OrderStatusOverrideCompleted"}') is None
    for garbage in (b"not json", b"[1, 2]", b"\xff\xfe", None, b'{"type": "OrderStatusChanged"}',
                    e.model_dump_json().replace(e.event_id, "not-a-uuid").encode()):
        with pytest.raises(Unparseable):
            parse_notifiable(garbage)
