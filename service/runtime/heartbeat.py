"""Every process reports itself in Postgres every few seconds (issue 21): the console's list of processes.

A process — worker, notifier, gateway or console, any number of replicas — writes one row
(`service/adapters/postgres/heartbeats.py`) with its kind, host, pid, version and start time, and at
each beat what `report()` says: whether it is ready, the partitions it owns, the readiness detail. So
the console needs no list of addresses. A clean stop marks the row stopped; a process killed with -9
leaves it to go stale.

A heartbeat must never stop the process it describes: a write that fails (Postgres away, a statement
timeout, anything) is logged once, when beats start failing, and once more when they come back, and
the next beat simply tries again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata

import structlog

from service.adapters.postgres import heartbeats
from service.adapters.postgres.heartbeats import Beat, Identity
from service.runtime.health import Progress

log = structlog.get_logger("orderstatus.heartbeat")

INTERVAL_S = 5.0
# a beat is one small statement; a write that hangs longer (a dead TCP peer) is given up and tried again
WRITE_TIMEOUT_S = 5.0
# the daily clean-up of rows that stopped beating long ago, done by some beat about once an hour
FORGET_EVERY_BEATS = 720

Report = Callable[[], Beat]


def package_version() -> str:
    """The installed orderstatus version ("unknown" when run from a tree that is not installed)."""
    try:
        return metadata.version("orderstatus")
    except metadata.PackageNotFoundError:
        return "unknown"


def identity(kind: str, interval_s: float = INTERVAL_S) -> Identity:
    """This process: a new id per start (a restarted process is a new row; the old one shows stopped)."""
    return Identity(process_id=str(uuid.uuid4()), kind=kind, host=socket.gethostname(), pid=os.getpid(),
                    version=package_version(), started_at=datetime.now(timezone.utc), interval_s=interval_s)


def assigned(consumer) -> dict[str, list[int]]:
    """The partitions a Kafka consumer owns now, by topic (none before it has joined its group)."""
    owned: dict[str, list[int]] = {}
    for tp in consumer.assignment():
        owned.setdefault(tp.topic, []).append(tp.partition)
    return {topic: sorted(parts) for topic, parts in sorted(owned.items())}


def progress_report(progress: Progress, owned: Callable[[], dict[str, list[int]]] = dict) -> Report:
    """The usual report: readiness as /readyz answers it, and the partitions `owned()` names."""

    def report() -> Beat:
        ready, detail = progress.ready()
        return Beat(ready=ready, partitions=owned(), state=detail)

    return report


class Heartbeat:
    """Beats until stopped; `failing` is True while the last write failed (for tests and /status)."""

    def __init__(self, pool, who: Identity, report: Report) -> None:
        self.pool = pool
        self.who = who
        self.report = report
        self.failing = False
        self.beats = 0

    async def beat_once(self) -> bool:
        """One beat; True when it was written. Never raises (but for cancellation)."""
        try:
            now = self.report()
            await asyncio.wait_for(heartbeats.beat(self.pool, self.who, now), WRITE_TIMEOUT_S)
            if self.beats % FORGET_EVERY_BEATS == 0:
                await asyncio.wait_for(heartbeats.forget_old(self.pool), WRITE_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever it is, the process it describes goes on
            if not self.failing:
                log.warning("heartbeat not written, retrying at each beat", kind=self.who.kind, error=repr(exc))
            self.failing = True
            return False
        if self.failing:
            log.info("heartbeat written again", kind=self.who.kind)
        self.failing = False
        self.beats += 1
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Beat every interval until `stop`; then mark the row stopped (best effort)."""
        while not stop.is_set():
            await self.beat_once()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.who.interval_s)
        await self.stopped()

    async def stopped(self) -> None:
        """Mark the row stopped; a failure is logged, the row then goes stale instead."""
        try:
            await asyncio.wait_for(heartbeats.mark_stopped(self.pool, self.who.process_id), WRITE_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("heartbeat row not marked stopped: it will go stale", kind=self.who.kind, error=repr(exc))


@contextlib.asynccontextmanager
async def heartbeating(pool, kind: str, report: Report, interval_s: float = INTERVAL_S):
    """`async with heartbeating(pool, "worker", report):` beat while the block runs; its row is marked
    stopped when the block ends (before the caller closes the pool). Yields the Heartbeat."""
    beat = Heartbeat(pool, identity(kind, interval_s), report)
    stop = asyncio.Event()
    task = asyncio.create_task(beat.run(stop), name=f"heartbeat-{kind}")
    try:
        yield beat
    finally:
        stop.set()
        with contextlib.suppress(asyncio.TimeoutError):  # a beat and the stop mark, each bounded: cancelled after
            await asyncio.wait_for(task, WRITE_TIMEOUT_S * 3)
