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
series has a value for every minute (zero-filled).

At volume the hour's rows are many (hundreds of thousands in a busy hour: counting them on every request
made the Health page the slowest of the bench's console scenario), while a minute that is over no longer
changes.
`RecentActivity` keeps the counts of the settled minutes — those ending more than `SETTLE_MINUTES` ago,
beyond any transaction still open (the service's statements are short: a statement timeout bounds them)
— and asks the database only for the minutes since: the first call reads the hour, every later one a
few minutes. It is the console process's own memory, filled from rows, so the charts still survive a
restart and agree between replicas."""

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


SETTLE_MINUTES = 2  # a minute that ended longer ago than this no longer changes (no transaction is that long)

Rows = dict[str, list[tuple[datetime, str, int]]]  # series -> (minute, label, count)


async def _rows(db, since: datetime, until: datetime, dlq_topic: str) -> Rows:
    """The (minute, label, count) rows of every series in [since, until)."""
    return {
        "commands": [(r["minute"], r["outcome"], r["n"]) for r in await db.fetch(_COMMANDS, since, until)],
        "changes": [(r["minute"], "changes", r["n"]) for r in await db.fetch(_CHANGES, since, until)],
        "dead_letters": [(r["minute"], r["reason"], r["n"])
                         for r in await db.fetch(_DEAD_LETTERS, since, until, dlq_topic)],
        "emails": [(r["minute"], r["status"], r["n"]) for r in await db.fetch(_EMAILS, since, until)],
    }


def _activity(starts: list[datetime], rows: Rows) -> Activity:
    outcomes = rows["commands"]
    commands = buckets(starts, ((m, outcome.partition(":")[0], n) for m, outcome, n in outcomes), COMMAND_KINDS)
    rejections = buckets(starts, ((m, outcome.partition(":")[2], n) for m, outcome, n in outcomes
                                  if outcome.startswith("rejected:")))
    return Activity(minutes=starts, commands=commands, rejections=rejections,
                    changes=buckets(starts, rows["changes"], ("changes",))["changes"],
                    dead_letters=buckets(starts, rows["dead_letters"]),
                    emails=buckets(starts, rows["emails"], EMAIL_STATUSES))


async def last_hour(db, dlq_topic: str, minutes: int = WINDOW_MINUTES) -> Activity:
    """The activity of the last `minutes` minutes (the current one included). `db`: a pool or a connection."""
    last = await db.fetchval("SELECT date_trunc('minute', now())")
    starts = minute_starts(last, minutes)
    return _activity(starts, await _rows(db, starts[0], last + timedelta(minutes=1), dlq_topic))


class RecentActivity:
    """`last_hour` of one DLQ topic that remembers the settled minutes' counts and reads only the minutes since."""

    def __init__(self, dlq_topic: str, minutes: int = WINDOW_MINUTES, settle_minutes: int = SETTLE_MINUTES) -> None:
        self.dlq_topic = dlq_topic
        self.minutes = minutes
        self.settle = timedelta(minutes=settle_minutes)
        self._settled: Rows = {}
        self._settled_until: datetime | None = None  # every minute before this one is in `_settled`

    async def last_hour(self, db) -> Activity:
        last = await db.fetchval("SELECT date_trunc('minute', now())")
        starts = minute_starts(last, self.minutes)
        known = self._settled_until
        since = starts[0] if known is None or known <= starts[0] or known > last else known
        fresh = await _rows(db, since, last + timedelta(minutes=1), self.dlq_topic)
        settled_until = last - self.settle
        kept = {name: [row for row in self._settled.get(name, []) if starts[0] <= row[0] < since]
                for name in fresh}
        self._settled = {name: kept[name] + [row for row in fresh[name] if row[0] < settled_until]
                         for name in fresh}
        self._settled_until = max(settled_until, since)
        return _activity(starts, {name: kept[name] + fresh[name] for name in fresh})
