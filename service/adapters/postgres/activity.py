"""Per-minute activity of the last hour, from what Postgres already holds (issue 21, the console's charts).

* commands: `processed_commands` by outcome kind (applied, rejected, partial, invalid) — one record per
  command, whichever worker decided it; a redrive's bookkeeping record (`redrive:*`) and a claim still
  `pending` are not commands processed;
* rejections: the `rejected:<reason>` outcomes, by reason;
* changes: `order_history` rows (status changes applied), by the time they were decided;
* dead letters: `dead_letter_index` rows of the DLQ topic, by `error.reason`, at the time Kafka wrote
  them (so a letter indexed late still lands in its minute);
* emails: `sent_notifications` by status (sent, failed, sending = in doubt), at the time of the answer.

Because every count comes from rows, the charts survive a console restart and agree between replicas.
Minutes are the database's, truncated; the current minute is the last bucket (still filling). Every
series has a value for every minute (zero-filled)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

WINDOW_MINUTES = 60

Counts = dict[str, list[int]]


@dataclass(frozen=True)
class Activity:
    """Counts per minute: `minutes[i]` is the start of bucket i, oldest first; every list is that long."""

    minutes: list[datetime]
    commands: Counts  # outcome kind -> counts
    rejections: Counts  # reason -> counts
    changes: list[int]
    dead_letters: Counts  # error.reason -> counts
    emails: Counts  # sent | failed | sending -> counts


def minute_starts(last: datetime, count: int = WINDOW_MINUTES) -> list[datetime]:
    """The `count` minutes ending with the one starting at `last`, oldest first."""
    return [last - timedelta(minutes=count - 1 - i) for i in range(count)]


def buckets(minutes: Sequence[datetime], rows: Iterable[tuple[datetime, str, int]],
            always: Sequence[str] = ()) -> Counts:
    """(minute, label, count) rows as one zero-filled list per label, aligned with `minutes`; labels in
    `always` are present even without rows; rows outside the minutes are left out. Labels sorted."""
    index = {minute: i for i, minute in enumerate(minutes)}
    series: Counts = {label: [0] * len(minutes) for label in always}
    for minute, label, count in rows:
        i = index.get(minute)
        if i is None:
            continue
        series.setdefault(label, [0] * len(minutes))[i] += count
    return dict(sorted(series.items()))


COMMAND_KINDS = ("applied", "rejected", "partial", "invalid")
EMAIL_STATUSES = ("sent", "failed", "sending")

_COMMANDS = """
    SELECT date_trunc('minute', processed_at) AS minute, outcome, count(*)::int AS n
      FROM processed_commands
     WHERE processed_at >= $1 AND processed_at < $2 AND outcome <> 'pending' AND outcome NOT LIKE 'redrive:%'
     GROUP BY 1, 2
"""
_CHANGES = """
    SELECT date_trunc('minute', occurred_at) AS minute, count(*)::int AS n
      FROM order_history WHERE occurred_at >= $1 AND occurred_at < $2 GROUP BY 1
"""
_DEAD_LETTERS = """
    SELECT date_trunc('minute', written_at) AS minute, coalesce(reason, '(none)') AS reason, count(*)::int AS n
      FROM dead_letter_index WHERE topic = $3 AND written_at >= $1 AND written_at < $2 GROUP BY 1, 2
"""
_EMAILS = """
    SELECT date_trunc('minute', sent_at) AS minute, status, count(*)::int AS n
      FROM sent_notifications WHERE sent_at >= $1 AND sent_at < $2 GROUP BY 1, 2
"""


async def last_hour(db, dlq_topic: str, minutes: int = WINDOW_MINUTES) -> Activity:
    """The activity of the last `minutes` minutes (the current one included). `db`: a pool or a connection."""
    last = await db.fetchval("SELECT date_trunc('minute', now())")
    starts = minute_starts(last, minutes)
    since, until = starts[0], last + timedelta(minutes=1)
    outcomes = [(r["minute"], r["outcome"], r["n"]) for r in await db.fetch(_COMMANDS, since, until)]
    commands = buckets(starts, ((m, outcome.partition(":")[0], n) for m, outcome, n in outcomes), COMMAND_KINDS)
    rejections = buckets(starts, ((m, outcome.partition(":")[2], n) for m, outcome, n in outcomes
                                  if outcome.startswith("rejected:")))
    changes = buckets(starts, ((r["minute"], "changes", r["n"]) for r in await db.fetch(_CHANGES, since, until)),
                      ("changes",))["changes"]
    dead_letters = buckets(starts, ((r["minute"], r["reason"], r["n"])
                                    for r in await db.fetch(_DEAD_LETTERS, since, until, dlq_topic)))
    emails = buckets(starts, ((r["minute"], r["status"], r["n"]) for r in await db.fetch(_EMAILS, since, until)),
                     EMAIL_STATUSES)
    return Activity(minutes=starts, commands=commands, rejections=rejections, changes=changes,
                    dead_letters=dead_letters, emails=emails)
