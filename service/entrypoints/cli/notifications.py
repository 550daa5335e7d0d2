"""`orderstatus notifications resend`: operate on the notification emails."""

from __future__ import annotations

import click

from service.adapters.postgres.connection import create_pool
from service.adapters.postgres.notifications import PostgresNotificationStore
from service.adapters.smtp import Mailer
from service.entrypoints.cli.common import UserError, run
from service.notifier.resend import ResendError, parse_event_id, resend as resend_event
from service.runtime.settings import Settings


@click.group()
def notifications() -> None:
    """Operate on the notification emails."""


@notifications.command("resend")
@click.argument("event_id")
@click.pass_obj
def resend(settings: Settings, event_id: str) -> None:
    """Send an OrderStatusChanged event's emails again, on purpose (one line per recipient)."""

    def report(result) -> None:
        line = f"{result.recipient}: {result.outcome} (attempt {result.attempt})"
        click.echo(f"{line}: {result.detail}" if result.outcome != "sent" and result.detail else line)

    async def go():
        eid = parse_event_id(event_id)
        pool = await create_pool(settings.database_url.get_secret_value(), size=2)
        mailer = Mailer(settings)
        try:
            return await resend_event(PostgresNotificationStore(pool), mailer, settings.mail_from, eid, report)
        finally:
            await mailer.close()
            await pool.close()

    try:
        results = run(go())
    except ResendError as exc:
        raise UserError(str(exc)) from None
    if not results:
        click.echo(f"event {event_id}: the order has no contacts; nothing sent", err=True)
    not_sent = [r for r in results if r.outcome != "sent"]
    if not_sent:
        raise UserError(f"{len(not_sent)} of {len(results)} emails not delivered")


COMMANDS = [notifications]
