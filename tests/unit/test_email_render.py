"""Email content rules (R10) and header safety, without SMTP or any other service."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from email import message_from_bytes, policy
from html.parser import HTMLParser

import pytest

from service.contract.events import Topics, Unparseable, parse_status_changed, to_wire
from service.domain.events import StatusChanged
from service.domain.model import Actor, Note, Recipient, StatusLabel
from service.notifier.rendering import EVENT_ID_HEADER, InvalidRecipient, render_email

CLIENT = Recipient("ann@example.com", "Ann", "client")
STAKEHOLDER = Recipient("pm@example.com", None, "stakeholder")


def event(**changes) -> StatusChanged:
    fields = dict(
        event_id=uuid.uuid4(), command_id=str(uuid.uuid4()), order_id=1029, order_type="SO", version=4,
        from_status=StatusLabel(id=2, code="Confirmed", name="Confirmed"),
        to_status=StatusLabel(id=21, code="CancelledByClient", name="Cancelled"),
        override=False, notify=True, actor=Actor(id="u-7", role="staff"),
        note=Note(text="Customer asked to cancel", is_public=False),
        removed_reservations=("R-1",), removed_coupons=("SPRING10",),
        occurred_at=datetime(2025, 3, 4, 10, 11, 12, tzinfo=timezone.utc),
    )
    fields.update(changes)
    return StatusChanged(**fields)


def parts(message) -> tuple[str, str]:
    """The plain-text and HTML bodies, after a round trip through bytes as the server sees them."""
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    return parsed.get_body(("plain",)).get_content(), parsed.get_body(("html",)).get_content()


def test_subject_and_both_parts_name_order_statuses_actor_and_time():
    """Subject, text and HTML each name the order, the old and new status, the actor (by role) and the time."""
    message = render_email(event(), CLIENT, "orders@example.com")
    text, html = parts(message)
    for content in (message["Subject"], text, html):
        for expected in ("1029", "Confirmed", "Cancelled", "a staff", "2025-03-04 10:11:12 UTC"):
            assert expected in content, (expected, content)
    assert message["From"] == "orders@example.com"
    assert message["To"] == "Ann <ann@example.com>"
    assert message.get_content_type() == "multipart/alternative"


def test_client_sees_only_public_notes_and_stakeholder_sees_all():
    """R10: a private note reaches stakeholders only; a public note reaches everybody."""
    private = event(note=Note(text="internal: payment disputed", is_public=False))
    public = event(note=Note(text="Your order was cancelled as requested", is_public=True))
    for content in parts(render_email(private, CLIENT, "orders@example.com")):
        assert "payment disputed" not in content
    for content in parts(render_email(private, STAKEHOLDER, "orders@example.com")):
        assert "payment disputed" in content
    for recipient in (CLIENT, STAKEHOLDER):
        for content in parts(render_email(public, recipient, "orders@example.com")):
            assert "cancelled as requested" in content


def test_html_part_escapes_user_text():
    """Note text is autoescaped in HTML, so a note cannot inject markup."""
    hostile = event(note=Note(text='<script>alert("x")</script> & more', is_public=True))
    text, html = parts(render_email(hostile, CLIENT, "orders@example.com"))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html and "&amp; more" in html
    assert '<script>alert("x")</script> & more' in text  # plain text is not HTML: shown as written


def test_emails_name_the_actor_by_role_never_by_a_self_asserted_id():
    """The actor's id (which a first-wave producer asserts itself) is not in the email; a display name
    from a verified token is, with the role."""
    plain = render_email(event(), STAKEHOLDER, "orders@example.com")
    assert "u-7" not in plain.as_string() and "a staff" in parts(plain)[0]
    named = render_email(event(actor=Actor(id="u-7", role="manager", name="Ann Smith")), STAKEHOLDER,
                         "orders@example.com")
    assert "Ann Smith (manager)" in parts(named)[0] and "u-7" not in named.as_string()


def test_header_values_cannot_break_lines():
    """CR/LF in event text (actor name, status name) never produces extra headers."""
    hostile = event(
        actor=Actor(id="u-7", role="staff", name="Ann\r\nBcc: victim@example.com"),
        to_status=StatusLabel(id=21, code="X", name="Cancelled\nX-Injected: yes"),
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
    e = event(note=Note(text="Größe geändert — ✓", is_public=True))
    message = render_email(e, CLIENT, "orders@example.com")
    assert message[EVENT_ID_HEADER] == str(e.event_id)
    assert message.as_bytes().isascii()
    assert "Größe geändert — ✓" in parts(message)[0]


def test_stakeholder_sees_released_reservations_client_does_not():
    """Reservation refs and coupon codes are internal: only stakeholders see them."""
    assert "R-1" in parts(render_email(event(), STAKEHOLDER, "orders@example.com"))[0]
    assert "R-1" not in parts(render_email(event(), CLIENT, "orders@example.com"))[0]


def test_parse_status_changed_sorts_events():
    """OrderStatusChanged reads back as the event the worker emitted; other events are ignored; garbage is Unparseable."""
    e = event()
    wire = to_wire(e, Topics(events="events", dlq="dlq")).value
    assert parse_status_changed(wire) == e
    assert parse_status_changed(b'{"type": "OrderStatusChangeRejected", "event_id": "x"}') is None
    assert parse_status_changed(b'{"type": "OrderStatusOverrideCompleted"}') is None
    for garbage in (b"not json", b"[1, 2]", b"\xff\xfe", None, b'{"type": "OrderStatusChanged"}',
                    wire.replace(str(e.event_id).encode(), b"not-a-uuid")):
        with pytest.raises(Unparseable):
            parse_status_changed(garbage)


# --- every template case, read line by line (issue 20 item 1) --------------------------------------

ROLE_WORDS = {"client": "a client", "staff": "a staff member", "manager": "a manager", "system": "the system"}


class _Html(HTMLParser):
    """The HTML part as a reader sees it: the text of each block element, and the From/To/… table."""

    BLOCKS = {"p", "h3", "th", "td", "title"}

    def __init__(self):
        super().__init__()
        self.blocks: list[str] = []
        self.rows: dict[str, str] = {}
        self._open: list[str] = []
        self._text: list[str] = []
        self._row: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCKS:
            self._open.append(tag)
            self._text = []
        if tag == "tr":
            self._row = []

    def handle_endtag(self, tag):
        if tag in self.BLOCKS and self._open and self._open[-1] == tag:
            self._open.pop()
            text = " ".join("".join(self._text).split())
            self.blocks.append(text)
            if tag in ("th", "td"):
                self._row.append(text)
        if tag == "tr" and len(self._row) == 2:
            self.rows[self._row[0]] = self._row[1]

    def handle_data(self, data):
        if self._open:
            self._text.append(data)


def _cases():
    for role in ("client", "staff", "manager", "system"):
        for name in (None, "Ann Smith"):
            for kind in ("client", "stakeholder"):
                for note in (None, Note("Left at the door", True), Note("payment disputed", False)):
                    for override, reservations, coupons in ((False, (), ()), (True, (), ()),
                                                            (False, ("R-1", "R-2"), ("SPRING10",)),
                                                            (False, (), ("SPRING10",))):
                        yield role, name, kind, note, override, reservations, coupons


class TestEveryTemplateCase:
    """Every combination of role, verified name, recipient kind, note and cancel extras reads right."""

    @pytest.mark.parametrize("role,name,kind,note,override,reservations,coupons", list(_cases()))
    def test_text_body_has_one_field_per_line_and_html_the_same_fields(self, role, name, kind, note, override,
                                                                        reservations, coupons):
        """The plain-text body, line by line, and the parsed HTML name each field once, in correct English."""
        e = event(actor=Actor(id="u-7", role=role, name=name),
                  note=note or Note(text="", is_public=False), override=override,
                  removed_reservations=reservations, removed_coupons=coupons)
        recipient = Recipient("ann@example.com", "Ann" if kind == "client" else None, kind)
        text, html = parts(render_email(e, recipient, "orders@example.com"))
        actor = f"Ann Smith ({role})" if name else ROLE_WORDS[role]
        shown_note = note.text if note and (kind == "stakeholder" or note.is_public) else None
        internal = kind == "stakeholder"

        expected = ["Dear Ann," if kind == "client" else "Hello,", "",
                    "The status of SO order 1029 has changed.", "",
                    "  From:        Confirmed",
                    "  To:          Cancelled (CancelledByClient)",
                    f"  Changed by:  {actor}",
                    "  When:        2025-03-04 10:11:12 UTC"]
        if override:
            expected += ["", "This was an administrative override."]
        if shown_note:
            expected += ["", "Note:", shown_note]
        if internal and reservations:
            expected += ["", "Reservations released: R-1, R-2"]
        if internal and coupons:
            expected += ([] if reservations else [""]) + ["Coupons removed: SPRING10"]
        expected += ["", "--", f"This is an automatic message about order 1029 (change 4, event {e.event_id})."]
        assert text.splitlines() == expected

        page = _Html()
        page.feed(html)
        assert page.rows == {"From": "Confirmed", "To": "Cancelled (CancelledByClient)",
                             "Changed by": actor, "When": "2025-03-04 10:11:12 UTC"}
        assert page.blocks[1] == ("Dear Ann," if kind == "client" else "Hello,")
        assert ("This was an administrative override." in page.blocks) is override
        assert ("Note" in page.blocks and shown_note in page.blocks) if shown_note else "Note" not in page.blocks
        assert ("Reservations released: R-1, R-2" in page.blocks) is bool(internal and reservations)
        assert ("Coupons removed: SPRING10" in page.blocks) is bool(internal and coupons)
        assert "a staff " not in text.replace("a staff member", "") and " a system" not in text
