"""The mail-transport contract against the aiosmtplib Mailer on the SMTP sink of the tests (aiosmtpd)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

import pytest

from service.adapters.smtp import Mailer
from tests.helpers.mailer_contract import MailerContract


@dataclass(frozen=True)
class SinkSettings:
    """What the mailer reads of the configuration (`adapters.smtp.SmtpSettings`): the sink, plain, no login."""

    smtp_port: int
    smtp_host: str = "127.0.0.1"
    smtp_username: str | None = None
    smtp_password: None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    smtp_timeout_s: float = 10.0
    smtp_cafile: str | None = None
    mail_from: str = "orders@example.com"


class SinkBackend:
    """The Mailer connected to the sink; refusals and accepted messages are the sink's own."""

    def __init__(self, sink) -> None:
        self.sink = sink
        self.mailer = Mailer(SinkSettings(smtp_port=sink.port))

    def refuse(self, recipient: str, reply: str) -> None:
        with self.sink.mailbox.lock:
            self.sink.mailbox.refuse[recipient.lower()] = reply

    async def accepted(self) -> list[EmailMessage]:
        return self.sink.messages


class TestSmtpMailer(MailerContract):
    """The aiosmtplib Mailer keeps the mail-transport contract against a real SMTP server."""

    @pytest.fixture
    async def backend(self, mailbox):
        backend = SinkBackend(mailbox)
        try:
            yield backend
        finally:
            await backend.mailer.close()
            with mailbox.mailbox.lock:  # the sink is the session's: later tests must not meet these refusals
                mailbox.mailbox.refuse.clear()
