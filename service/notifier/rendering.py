"""One email per (event, recipient), rendered from the Jinja2 templates in service/notifier/templates/.

Pure: no I/O beyond reading the templates, so the content rules (R10: clients see public notes
only) are unit-tested without SMTP. Every header value is forced onto one line, so text that comes
from commands (actor ids, status names from the rules file) can never add headers."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from service.domain.events import StatusChanged
from service.domain.model import Recipient

TEMPLATES = ("status_changed_subject.txt", "status_changed.txt", "status_changed.html")
EVENT_ID_HEADER = "X-Orderstatus-Event-Id"
TRACEPARENT_HEADER = "Traceparent"

# C0 controls (CR, LF, NUL, ...), DEL and the Unicode line/paragraph separators
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_SUBJECT_MAX = 250


class InvalidRecipient(ValueError):
    """An address we refuse to put on the wire (it would be a header or SMTP command injection)."""


def single_line(value: str, limit: int | None = None) -> str:
    """A header-safe value: control characters (CR/LF above all) become one space."""
    text = _CONTROL.sub(" ", value).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def address(email: str, name: str | None = None) -> Address:
    """Parse an address, refusing anything that is not one plain ASCII addr-spec."""
    if not email or _CONTROL.search(email) or any(c.isspace() for c in email) or not email.isascii():
        raise InvalidRecipient(f"not a deliverable address: {email!r}")
    try:
        parsed = Address(display_name=single_line(name or ""), addr_spec=email)
    except (ValueError, IndexError) as exc:
        raise InvalidRecipient(f"not a deliverable address: {email!r} ({exc})") from None
    if not parsed.username or not parsed.domain or parsed.addr_spec != email:
        raise InvalidRecipient(f"not a deliverable address: {email!r}")
    return parsed


@cache
def _environment() -> Environment:
    # built on first use, not at import; autoescape only for the HTML part (R10 notes are user text)
    return Environment(
        loader=PackageLoader("service.notifier", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _when(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def visible_note(event: StatusChanged, recipient: Recipient) -> str | None:
    """R10: stakeholders always see the note; client contacts only a public one."""
    if recipient.kind == "stakeholder" or event.note.is_public:
        return event.note.text
    return None


# how each role reads in a sentence ("Changed by: a staff member"); "a staff" is not English
ROLE_PHRASES = {"client": "a client", "staff": "a staff member", "manager": "a manager", "system": "the system"}


def actor_phrase(role: str, name: str | None) -> str:
    """The actor as an email names it: by verified name with the role, else by role alone."""
    if name:
        return f"{name} ({role})"
    return ROLE_PHRASES.get(role, f"a user with role {role}")


def status_text(label) -> str:
    """`Name (Code)`, or just the name when the code says the same."""
    return label.name if label.code == label.name else f"{label.name} ({label.code})"


def template_context(event: StatusChanged, recipient: Recipient) -> dict:
    internal = recipient.kind == "stakeholder"
    return {
        "name": recipient.name,
        "kind": recipient.kind,
        "event_id": str(event.event_id),
        "order_id": event.order_id,
        "order_type": event.order_type,
        "version": event.version,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "override": event.override,
        # by role, and by name only when a verified token carried one: never a raw self-asserted id
        "actor": actor_phrase(event.actor.role, event.actor.name),
        "from_text": status_text(event.from_status),
        "to_text": status_text(event.to_status),
        "occurred": _when(event.occurred_at),
        "note": visible_note(event, recipient),
        # reservation refs and coupon codes are internal bookkeeping; clients get the plain change
        "removed_reservations": list(event.removed_reservations) if internal else [],
        "removed_coupons": list(event.removed_coupons) if internal else [],
    }


def render_email(event: StatusChanged, recipient: Recipient, mail_from: str,
                 traceparent: str | None = None) -> EmailMessage:
    """The message for one recipient: plain-text and HTML alternatives, one line per header."""
    to = address(recipient.email, recipient.name)
    sender = address(mail_from)
    env = _environment()
    context = template_context(event, recipient)
    subject, text, html = (env.get_template(name).render(context) for name in TEMPLATES)

    message = EmailMessage(policy=SMTP)
    message["Subject"] = single_line(subject, _SUBJECT_MAX)
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(datetime.now(timezone.utc))
    message["Message-ID"] = make_msgid(idstring=single_line(str(event.event_id), 64), domain=sender.domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not reply
    message[EVENT_ID_HEADER] = single_line(str(event.event_id), 64)
    if traceparent:  # W3C trace context: the trace runs from the command to the mailbox (DESIGN §11)
        message[TRACEPARENT_HEADER] = single_line(traceparent, 64)
    # quoted-printable keeps the message 7-bit clean, so any server takes it without 8BITMIME
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message
