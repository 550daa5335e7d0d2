"""One contract suite of the notifier's mail transport (`service.notifier.ports.MailTransport`), run against
every implementation as eventsourcing runs one abstract test case per backend: `tests/unit/test_fake_mailer.py`
runs it against the in-memory fake, `tests/integration/test_smtp_mailer.py` against the aiosmtplib `Mailer` on
the SMTP sink of the tests. A subclass provides a `backend` fixture: the transport, a way to make the server
refuse a recipient, and a reader of what the server accepted. The suite checks the accepted messages through
that reader, not only through the replies, so a fake that answers 250 and keeps nothing fails it.

What delivery relies on (`service/notifier/delivery.py`): nothing arrives before `send_data`; a 5xx recipient is
Refused with the server's reply and a 4xx one is RecipientDeferred (a SmtpUnavailable), both leaving the
transport usable for the next recipient; `send_data` without an envelope is SmtpUnavailable."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from typing import Protocol

import pytest

from service.adapters.smtp import RecipientDeferred, Refused, SmtpUnavailable
from service.notifier.ports import MailTransport
from tests.helpers.contract_suite import ContractSuite

ANA, BEN = "ana@example.com", "ben@example.com"


class Backend(Protocol):
    """What a concrete suite provides: the port, refusals, and a reader of the accepted messages."""

    mailer: MailTransport

    def refuse(self, recipient: str, reply: str) -> None:
        """Make the server answer RCPT TO for this recipient with `reply` (e.g. "550 no such user")."""

    async def accepted(self) -> list[EmailMessage]:
        """Every message the server accepted, in order."""


def message(recipient: str, subject: str) -> bytes:
    """A small email as delivery hands it over (CRLF line ends)."""
    mail = EmailMessage(policy=policy.SMTP)
    mail["From"] = "orders@example.com"
    mail["To"] = recipient
    mail["Subject"] = subject
    mail.set_content(f"Hello {recipient}: {subject}.")
    return mail.as_bytes()


def seen(accepted: list[EmailMessage]) -> list[tuple[str, str]]:
    return [(str(m["To"]), str(m["Subject"])) for m in accepted]


class MailerContract(ContractSuite):
    """The behaviour every mail transport keeps."""

    async def test_a_message_sent_in_an_open_envelope_arrives_once(self, backend):
        """send_data returns a 250 reply and the server holds the message with its content."""
        await backend.mailer.open_envelope(ANA)
        reply = await backend.mailer.send_data(message(ANA, "Order 11 is on hold"))
        assert reply.startswith("250")
        [accepted] = await backend.accepted()
        assert (accepted["To"], accepted["Subject"]) == (ANA, "Order 11 is on hold")
        assert "Hello ana@example.com: Order 11 is on hold." in accepted.get_content()

    async def test_nothing_arrives_before_data(self, backend):
        """An open envelope alone delivers nothing."""
        await backend.mailer.open_envelope(ANA)
        assert await backend.accepted() == []

    async def test_messages_in_a_row_arrive_in_order(self, backend):
        """One transport carries one message per envelope, each once, in the order sent."""
        for recipient, subject in ((ANA, "first"), (BEN, "second"), (ANA, "third")):
            await backend.mailer.open_envelope(recipient)
            await backend.mailer.send_data(message(recipient, subject))
        assert seen(await backend.accepted()) == [(ANA, "first"), (BEN, "second"), (ANA, "third")]

    async def test_a_recipient_refused_for_good_is_refused_with_the_reply(self, backend):
        """A 5xx answer to RCPT TO raises Refused carrying the server's reply."""
        backend.refuse(ANA, "550 no such user")
        with pytest.raises(Refused) as refused:
            await backend.mailer.open_envelope(ANA)
        assert refused.value.reply == "550 no such user"

    async def test_a_recipient_deferred_is_a_temporary_failure(self, backend):
        """A 4xx answer to RCPT TO raises RecipientDeferred, which is a SmtpUnavailable, with the reply."""
        backend.refuse(ANA, "450 mailbox busy")
        with pytest.raises(RecipientDeferred, match="450 mailbox busy") as deferred:
            await backend.mailer.open_envelope(ANA)
        assert isinstance(deferred.value, SmtpUnavailable)

    async def test_the_next_recipient_flows_after_a_refusal(self, backend):
        """After a refused and a deferred recipient, the next recipient's message is delivered, and only it."""
        backend.refuse(ANA, "550 no such user")
        backend.refuse(BEN, "450 mailbox busy")
        for refused in (ANA, BEN):
            with pytest.raises((Refused, SmtpUnavailable)):
                await backend.mailer.open_envelope(refused)
        await backend.mailer.open_envelope("cy@example.com")
        await backend.mailer.send_data(message("cy@example.com", "still flowing"))
        assert seen(await backend.accepted()) == [("cy@example.com", "still flowing")]

    async def test_data_without_an_envelope_is_unavailable(self, backend):
        """send_data on a transport that opened no envelope raises SmtpUnavailable and delivers nothing."""
        with pytest.raises(SmtpUnavailable):
            await backend.mailer.send_data(message(ANA, "no envelope"))
        assert await backend.accepted() == []

    async def test_a_reset_envelope_delivers_nothing_and_the_next_one_delivers(self, backend):
        """reset abandons the envelope; a new envelope on the same transport delivers exactly its message."""
        await backend.mailer.open_envelope(ANA)
        await backend.mailer.reset()
        await backend.mailer.open_envelope(BEN)
        await backend.mailer.send_data(message(BEN, "after reset"))
        assert seen(await backend.accepted()) == [(BEN, "after reset")]

    async def test_the_transport_works_again_after_close(self, backend):
        """close ends the connection; the next envelope opens a new one and delivers."""
        await backend.mailer.open_envelope(ANA)
        await backend.mailer.send_data(message(ANA, "before close"))
        await backend.mailer.close()
        await backend.mailer.open_envelope(BEN)
        await backend.mailer.send_data(message(BEN, "after close"))
        assert seen(await backend.accepted()) == [(ANA, "before close"), (BEN, "after close")]
