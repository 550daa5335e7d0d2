"""The `process_heartbeats` table (issue 21): every running process reports itself in one row.

A process writes its row every `interval_s` seconds (`service/runtime/heartbeat.py`); `beat_at` is the
database's clock, so the hosts' clocks never matter. A row is *stale* when its last beat is older than
`STALE_AFTER_BEATS` of the intervals the process promised: the process was killed, hangs, or cannot reach
Postgres. A process that stops cleanly marks its row stopped. Rows that have not beaten for a day are
deleted by the beating processes themselves, so killed processes do not pile up.

The functions take a pool or a connection of `connection.py` (JSON codecs set); the results are plain data."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

STALE_AFTER_BEATS = 3.0
FORGET_AFTER_S = 86_400.0


@dataclass(frozen=True)
class Identity:
    """Who is beating: fixed for the life of the process."""

    process_id: str
    kind: str  # worker | notifier | gateway | console
    host: str
    pid: int
    version: str
    started_at: datetime
    interval_s: float


@dataclass(frozen=True)
class Beat:
    """What a process says about itself at one beat."""

    ready: bool
    partitions: Mapping[str, Sequence[int]]  # topic -> partitions it owns
    state: Mapping[str, object]  # readiness detail (database, kafka, paused, ...): JSON-able


@dataclass(frozen=True)
class ProcessRow:
    """A process as the console shows it."""

    process_id: str
    kind: str
    host: str
    pid: int
    version: str
    started_at: datetime
    beat_at: datetime
    seconds_since_beat: float
    interval_s: float
    ready: bool
    partitions: dict[str, list[int]]
    state: dict
    stopped_at: datetime | None

    @property
    def status(self) -> str:
        """`stopped` (cleanly), `stale` (no beat for STALE_AFTER_BEATS intervals) or `running`."""
        if self.stopped_at is not None:
            return "stopped"
        if self.seconds_since_beat > STALE_AFTER_BEATS * self.interval_s:
            return "stale"
        return "running"


async def beat(db, who: Identity, now: Beat) -> None:
    """Write the process's row: created at its first beat, updated at every later one (also after a stop
    mark, should one be written by mistake while the process still runs)."""
    await db.execute(
        """
        INSERT INTO process_heartbeats
            (process_id, kind, host, pid, version, started_at, interval_s, ready, partitions, state, beat_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
        ON CONFLICT (process_id) DO UPDATE
           SET beat_at = now(), ready = EXCLUDED.ready, partitions = EXCLUDED.partitions,
               state = EXCLUDED.state, interval_s = EXCLUDED.interval_s, stopped_at = NULL
        """,
        who.process_id, who.kind, who.host, who.pid, who.version, who.started_at, who.interval_s, now.ready,
        {topic: sorted(parts) for topic, parts in now.partitions.items()}, _plain(now.state),
    )


async def mark_stopped(db, process_id: str) -> None:
    """A clean stop: the row stays (the console shows when it stopped), no longer ready, owning nothing."""
    await db.execute(
        "UPDATE process_heartbeats SET stopped_at = now(), ready = false, partitions = '{}' WHERE process_id = $1",
        process_id,
    )


async def forget_old(db, older_than_s: float = FORGET_AFTER_S) -> int:
    """Delete the rows that have not beaten for `older_than_s` seconds; returns how many went."""
    status = await db.execute(
        "DELETE FROM process_heartbeats WHERE beat_at < now() - make_interval(secs => $1)", older_than_s,
    )
    return int(status.split()[-1])


def _plain(state: Mapping[str, object]) -> dict:
    """The state as JSON-able values (anything else as its text)."""
    return json.loads(json.dumps(dict(state), default=str))


def _json(value) -> dict:
    """A jsonb column as a dict (the service's connections decode JSON; a bare asyncpg one gives text)."""
    return json.loads(value) if isinstance(value, str) else dict(value or {})


async def processes(db, kind: str | None = None) -> list[ProcessRow]:
    """Every process that has a row (optionally of one kind), by kind, host and start time."""
    rows = await db.fetch(
        """
        SELECT process_id, kind, host, pid, version, started_at, beat_at, interval_s, ready, partitions, state,
               stopped_at, extract(epoch FROM now() - beat_at)::float8 AS seconds_since_beat
          FROM process_heartbeats
         WHERE $1::text IS NULL OR kind = $1
         ORDER BY kind, host, started_at, process_id
        """,
        kind,
    )
    return [
        ProcessRow(
            process_id=r["process_id"], kind=r["kind"], host=r["host"], pid=r["pid"], version=r["version"],
            started_at=r["started_at"], beat_at=r["beat_at"], seconds_since_beat=max(r["seconds_since_beat"], 0.0),
            interval_s=r["interval_s"], ready=r["ready"],
            partitions={topic: list(parts) for topic, parts in _json(r["partitions"]).items()},
            state=_json(r["state"]), stopped_at=r["stopped_at"],
        )
        for r in rows
    ]
