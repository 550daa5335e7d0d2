"""The mail-transport contract against the in-memory fake mailer (no services)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from tests.helpers.fake_mailer import FakeMailer
from tests.helpers.mailer_contract import MailerContract


class FakeBackend:
    """The fake mailer, its refusals and the messages it kept."""

    def __init__(self) -> None:
        self.mailer = FakeMailer()

    def refuse(self, recipient: str, reply: str) -> None:
        self.mailer.refuse[recipient.lower()] = reply

    async def accepted(self) -> list[EmailMessage]:
        return list(self.mailer.messages)


class TestFakeMailer(MailerContract):
    """FakeMailer keeps the mail-transport contract."""

    @pytest.fixture
    def backend(self) -> FakeBackend:
        return FakeBackend()
