"""SMTP with aiosmtplib, split into the two stages the delivery protocol needs.

`open_envelope` (connect, MAIL FROM, RCPT TO) cannot deliver anything, so every failure there is
safe to retry; `send_data` (DATA) is where the server may accept the message. Splitting them lets
the caller claim its idempotency row between the two (see service/notifier/delivery.py), and tells it exactly which
failures are "certainly not sent" and which are "maybe sent".

Failures are classified by SMTP reply class: 5xx is permanent (`Refused`, recorded and skipped),
4xx and connection trouble are temporary (`SmtpUnavailable`, retried with backoff).

Credentials are only ever sent over TLS (implicit TLS or STARTTLS): the settings refuse the other
combination, and the mailer checks again on the live connection before it logs in."""

from __future__ import annotations

from typing import Protocol

import aiosmtplib
import structlog
from pydantic import SecretStr

from service.adapters.errors import Unavailable

log = structlog.get_logger("orderstatus.mailer")


class SmtpSettings(Protocol):
    """What the mailer reads of the configuration (`runtime.settings.Settings` has each of these, DESIGN §3):
    declared here, so the adapter does not import the runtime's settings."""

    smtp_host: str
    smtp_port: int
    smtp_username: str | None
    smtp_password: SecretStr | None
    smtp_starttls: bool
    smtp_use_tls: bool
    smtp_timeout_s: float
    smtp_cafile: str | None
    mail_from: str


class SmtpUnavailable(Unavailable):
    """The server is unreachable or answered 4xx: the message was certainly not accepted; retry later."""

    dependency = "smtp"


class RecipientDeferred(SmtpUnavailable):
    """The server answered RCPT TO for this recipient with 4xx (mailbox busy, greylisted): about one address,
    not the server; the notifier retries it a bounded number of times, then records it and moves on."""


class Refused(Exception):
    """The server refused this message or recipient for good (5xx); `reply` is its answer."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class PlaintextCredentials(Exception):
    """SMTP credentials would travel without TLS: refused. A configuration error, never retried."""


class OutcomeUnknown(Exception):
    """The connection broke after the message was handed over: the server may or may not have it."""


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}".strip()


def _classify(exc: aiosmtplib.SMTPResponseException) -> Exception:
    return Refused(_reply(exc)) if 500 <= exc.code < 600 else SmtpUnavailable(_reply(exc))


class Mailer:
    """One reusable SMTP connection; opened on first use, dropped on any error and reopened."""

    def __init__(self, settings: SmtpSettings) -> None:
        if settings.smtp_username is not None and not (settings.smtp_starttls or settings.smtp_use_tls):
            # Settings() already refuses this; settings built with model_copy/model_construct are not validated
            raise PlaintextCredentials("SMTP credentials need ORDERSTATUS_SMTP_STARTTLS or ORDERSTATUS_SMTP_USE_TLS")
        self.settings = settings
        self._smtp: aiosmtplib.SMTP | None = None

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        # no credentials here: aiosmtplib would log in inside connect(); _login does it after checking TLS
        return aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_use_tls,
            # explicit: False must mean no STARTTLS (aiosmtplib's None would upgrade opportunistically)
            start_tls=s.smtp_starttls and not s.smtp_use_tls,
            cert_bundle=s.smtp_cafile,
            timeout=s.smtp_timeout_s,
        )

    async def _login(self, smtp: aiosmtplib.SMTP) -> None:
        """Authenticate when configured, and only over a connection that really is TLS."""
        s = self.settings
        if s.smtp_username is None:
            return
        if smtp.get_transport_info("sslcontext") is None:
            raise PlaintextCredentials(f"refusing to log in to {s.smtp_host}:{s.smtp_port} without TLS")
        await smtp.login(s.smtp_username, s.smtp_password.get_secret_value() if s.smtp_password is not None else "")

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        self.drop()
        smtp = self._client()
        try:
            await smtp.connect()
            await self._login(smtp)
        except PlaintextCredentials:
            smtp.close()
            raise
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # connection, greeting, STARTTLS and login failures: nothing is sent, so wait and retry
            # (a bad password stalls the notifier visibly on /readyz instead of dropping mail)
            smtp.close()
            raise SmtpUnavailable(f"cannot connect to {self.settings.smtp_host}:{self.settings.smtp_port}: {exc}") from exc
        self._smtp = smtp
        return smtp

    async def open_envelope(self, recipient: str) -> None:
        """Start a transaction for one recipient. Raises Refused (5xx) or SmtpUnavailable."""
        for may_retry in (True, False):
            kept_alive = self._smtp is not None and self._smtp.is_connected
            smtp = await self._connected()
            at_recipient = False
            try:
                await smtp.mail(self.settings.mail_from)
                at_recipient = True
                await smtp.rcpt(recipient)
                return
            except aiosmtplib.SMTPResponseException as exc:
                await self.reset()
                if at_recipient and 400 <= exc.code < 500:  # about this address only: other recipients still flow
                    raise RecipientDeferred(_reply(exc)) from exc
                raise _classify(exc) from exc
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
                self.drop()
                if kept_alive and may_retry:
                    continue  # a kept-alive connection the server closed while idle: reconnect once
                raise SmtpUnavailable(f"connection lost before DATA: {exc}") from exc

    async def send_data(self, content: bytes) -> str:
        """Transfer the message; returns the server's acceptance reply.

        Raises Refused (5xx), SmtpUnavailable (4xx: certainly not accepted) or OutcomeUnknown."""
        if self._smtp is None:
            raise SmtpUnavailable("no open envelope")
        try:
            response = await self._smtp.data(content)
        except aiosmtplib.SMTPResponseException as exc:
            await self.reset()
            raise _classify(exc) from exc
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
            # aiosmtplib does not say whether the break came before or after the final "."
            self.drop()
            raise OutcomeUnknown(f"connection lost during DATA: {exc}") from exc
        return f"{response.code} {response.message}".strip()

    async def reset(self) -> None:
        """Abandon the open envelope (RSET), keeping the connection when it still works."""
        if self._smtp is None or not self._smtp.is_connected:
            return
        try:
            await self._smtp.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self.drop()

    def drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    async def close(self) -> None:
        """QUIT politely; called when a batch is done so no connection idles until the server cuts it."""
        if self._smtp is not None and self._smtp.is_connected:
            try:
                await self._smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
        self.drop()
