"""An in-memory mail server behind the notifier's `MailTransport` port (`service/notifier/ports.py`).

It passes the same contract suite as the aiosmtplib `Mailer` on the SMTP sink (`tests/helpers/mailer_contract.py`,
run by `tests/unit/test_fake_mailer.py`), in the manner of eventsourcing's per-backend test case."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

from service.adapters.smtp import RecipientDeferred, Refused, SmtpUnavailable

ACCEPTED = "250 Message accepted for delivery"


class FakeMailer:
    """Keeps every accepted message; refuses recipients listed in `refuse` with their reply (4xx or 5xx), as the
    SMTP sink of the tests does at RCPT TO; fails the DATA of a recipient listed in `fail_data` once, with the
    error the real `Mailer` raises there (OutcomeUnknown: the connection was lost; SmtpUnavailable: a 4xx; Refused:
    a 5xx)."""

    def __init__(self) -> None:
        self.refuse: dict[str, str] = {}  # recipient -> SMTP reply, e.g. "550 no such user"
        self.fail_data: dict[str, Exception] = {}  # recipient -> what its next DATA raises (then it is forgotten)
        self.messages: list[EmailMessage] = []
        self.envelope: str | None = None

    async def open_envelope(self, recipient: str) -> None:
        self.envelope = None
        reply = self.refuse.get(recipient.lower())
        if reply is None:
            self.envelope = recipient
        elif reply.startswith("5"):
            raise Refused(reply)
        else:
            raise RecipientDeferred(reply)

    async def send_data(self, content: bytes) -> str:
        if self.envelope is None:
            raise SmtpUnavailable("no open envelope")
        failure = self.fail_data.pop(self.envelope.lower(), None)
        if failure is not None:
            self.envelope = None
            raise failure
        self.messages.append(message_from_bytes(content, policy=policy.default))
        self.envelope = None
        return ACCEPTED

    async def reset(self) -> None:
        self.envelope = None

    async def close(self) -> None:
        self.envelope = None
