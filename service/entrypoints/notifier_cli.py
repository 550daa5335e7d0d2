"""`orderstatus notifier` and `orderstatus notifications …` (DESIGN §4), registered on the main group
by service/entrypoints/cli.py. Imports are deferred so `orderstatus --help` stays fast and cli.py
can import this module while it is still being defined."""

from __future__ import annotations

import sys

import click

from service.settings import Settings


@click.command()
@click.pass_obj
def notifier(settings: Settings) -> None:
    """Run the notifier (OrderStatusChanged events to emails) until SIGTERM/SIGINT."""
    from service.notifier import main as run_notifier

    sys.exit(run_notifier(settings))


@click.group()
def notifications() -> None:
    """Operate on the notification emails."""


@notifications.command("resend")
@click.argument("event_id")
@click.pass_obj
def resend(settings: Settings, event_id: str) -> None:
    """Send an OrderStatusChanged event's emails again, on purpose (one line per recipient)."""
    from service.entrypoints.cli import UserError, _run
    from service.notifier.resend import ResendError, resend as resend_event

    def report(result) -> None:
        line = f"{result.recipient}: {result.outcome} (attempt {result.attempt})"
        click.echo(f"{line}: {result.detail}" if result.outcome != "sent" and result.detail else line)

    try:
        results = _run(resend_event(settings, event_id, report))
    except ResendError as exc:
        raise UserError(str(exc)) from None
    if not results:
        click.echo(f"event {event_id}: the order has no contacts; nothing sent", err=True)
    not_sent = [r for r in results if r.outcome != "sent"]
    if not_sent:
        raise UserError(f"{len(not_sent)} of {len(results)} emails not delivered")
