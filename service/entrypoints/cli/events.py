"""`orderstatus events tail`: follow the events topic from its end, one readable line per event."""

from __future__ import annotations

import asyncio
import json

import click

from service.adapters.kafka.replies import EventsTail
from service.entrypoints.cli.common import run
from service.ops.events import concerns, describe
from service.runtime.settings import Settings
from service.runtime.signals import install_signal_handlers


@click.group()
def events() -> None:
    """The events topic, as operators read it."""


@events.command("tail")
@click.option("--order-id", type=int, default=None, help="Only events of this order (batch summaries naming it too).")
@click.option("--type", "event_type", default=None,
              help="Only this event type (OrderStatusChanged, OrderStatusChangeRejected, OrderStatusOverrideCompleted).")
@click.option("--json", "as_json", is_flag=True, help="Each event as one line of JSON instead.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N events.")
@click.pass_obj
def events_tail(settings: Settings, order_id: int | None, event_type: str | None, as_json: bool,
                count: int | None) -> None:
    """Follow the events topic from its end (no consumer group) until Ctrl-C or SIGTERM."""
    run(_follow(settings, order_id, event_type, as_json, count))


async def _follow(settings: Settings, order_id: int | None, event_type: str | None, as_json: bool,
                  count: int | None) -> None:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    tail = EventsTail(settings)
    try:
        await tail.start()
        click.echo(f"following {settings.events_topic} from its end", err=True)
        printing = asyncio.create_task(_print(tail, order_id, event_type, as_json, count))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({printing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (printing, stopping):
            task.cancel()
        await asyncio.gather(stopping, return_exceptions=True)
        if printing.done() and not printing.cancelled() and printing.exception() is not None:
            raise printing.exception()
        await asyncio.gather(printing, return_exceptions=True)
    finally:
        await tail.stop()


async def _print(tail: EventsTail, order_id: int | None, event_type: str | None, as_json: bool,
                 count: int | None) -> None:
    shown = 0
    async for _, event in tail.records():
        if event is None or not concerns(event, order_id, event_type):
            continue
        click.echo(json.dumps(event) if as_json else describe(event))
        shown += 1
        if count is not None and shown >= count:
            return


COMMANDS = [events]
