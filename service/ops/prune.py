"""`orderstatus prune` and the worker's background prune (`ORDERSTATUS_RETENTION_DAYS`): delete, in bounded
batches, published outbox rows, processed-command records and sent/failed notification records older
than the retention.

The records are what makes a replay harmless: a processed-command record turns a replayed command into a
duplicate, a notification record a replayed event into no second email. So the retention must be at
least as long as any topic keeps its messages: a topic that still holds a command (or an event, or a
dead letter) whose record was pruned would re-apply it (or re-send it) when replayed or redriven. Prune
reads each topic's `retention.ms` (plus `segment.ms`: Kafka deletes whole segments, so a message can
outlive `retention.ms` by up to one segment's time) and refuses a shorter retention, a topic that keeps
messages forever, and a topic whose retention the broker does not report (unless forced)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import structlog

from service.adapters.postgres import retention as store
from service.contract.durations import parse_duration
from service.ops.errors import OpsError
from service.ops.ports import ConsumerGroups
from service.runtime.faults import is_outage

log = structlog.get_logger("orderstatus.prune")

CONFIGS = ("retention.ms", "segment.ms", "cleanup.policy")
TABLES = tuple(store.OLD)


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `3600s`; a bare number is days (contract.durations)."""
    try:
        return parse_duration(text)
    except ValueError:
        raise OpsError(f"not an age like 30d, 12h, 90m or 3600s: {text!r}") from None


def human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{round(seconds / size, 2):g}{unit}"
    return f"{round(seconds, 3):g}s"


@dataclass(frozen=True)
class TopicKeeps:
    """How long a topic may keep a message: None when unknown, -1 for ever."""

    topic: str
    keeps_ms: int | None
    why: str

    def describe(self) -> str:
        if self.keeps_ms is None:
            return f"{self.topic}: retention unknown ({self.why})"
        if self.keeps_ms < 0:
            return f"{self.topic}: keeps messages for ever ({self.why})"
        return f"{self.topic}: keeps messages up to {human(self.keeps_ms / 1000)} ({self.why})"


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def topic_keeps(topic: str, configs: dict | None) -> TopicKeeps:
    """What the broker's configuration of a topic says about how long it keeps messages."""
    if configs is None:
        return TopicKeeps(topic, None, "the broker could not describe the topic")
    policy = configs.get("cleanup.policy") or ""
    if "compact" in policy and "delete" not in policy:
        return TopicKeeps(topic, -1, f"cleanup.policy={policy}")
    retention = _int(configs.get("retention.ms"))
    if retention is None:
        return TopicKeeps(topic, None, "the broker does not report retention.ms")
    if retention < 0:
        return TopicKeeps(topic, -1, f"retention.ms={retention}")
    segment = _int(configs.get("segment.ms"))
    if segment is None or segment < 0:
        return TopicKeeps(topic, retention, f"retention.ms={retention}")
    return TopicKeeps(topic, retention + segment, f"retention.ms={retention} + segment.ms={segment}")


def refusal(older_than: timedelta, keeps: list[TopicKeeps]) -> str | None:
    """Why pruning records older than `older_than` is unsafe with these topics; None when it is safe."""
    for topic in keeps:
        if topic.keeps_ms is None:
            return (f"{topic.describe()}: cannot tell whether a replay could bring back messages older than "
                    f"{human(older_than.total_seconds())}; rerun with --force only if you know the topic keeps them "
                    "for less — e.g. under `orderstatus dev`, whose embedded broker reports no retention and keeps "
                    "messages in memory only — or create the topics with an explicit retention "
                    "(`orderstatus topics create --retention 7d`)")
        if topic.keeps_ms < 0 or topic.keeps_ms > older_than.total_seconds() * 1000:
            return (f"{topic.describe()}, longer than the retention of {human(older_than.total_seconds())}: a replay "
                    "or redrive of what the topic still holds would re-apply commands or re-send emails whose "
                    "records were pruned; choose a longer retention or shorten the topic's")
    return None


async def topics_keep(groups: ConsumerGroups, topics: Sequence[str]) -> list[TopicKeeps]:
    """How long each topic keeps its messages: the commands (processed records), events (notification records) and
    DLQ (redrives) topics, as the entrypoints name them."""
    configs = await groups.topic_configs(list(topics), CONFIGS)
    return [topic_keeps(topic, configs[topic]) for topic in topics]


async def prune(conn, cutoff: datetime, *, batch_size: int = 1000, dry_run: bool = False,
                pause_s: float = 0.0) -> dict[str, int]:
    """Delete (or, in a dry run, count) the old rows of each table, `batch_size` rows per statement."""
    if dry_run:
        return await store.count_old(conn, cutoff)
    deleted: dict[str, int] = {}
    for table in TABLES:
        total = 0
        while True:
            gone = await store.delete_old(conn, table, cutoff, batch_size)
            total += gone
            if gone < batch_size:
                break
            if pause_s:
                await asyncio.sleep(pause_s)  # leave room for the worker's own transactions
        deleted[table] = total
    return deleted


@dataclass(frozen=True)
class Retention:
    """The background prune's configuration (ORDERSTATUS_RETENTION_DAYS, _INTERVAL_S, _BATCH_SIZE) and the topics
    whose retention bounds it."""

    days: float
    topics: tuple[str, ...]
    interval_s: float = 3600.0
    batch_size: int = 1000


class RetentionJob:
    """The worker's background prune: every `interval_s`, if the topics allow it (never forced)."""

    def __init__(self, retention: Retention, pool, groups: ConsumerGroups) -> None:
        self.retention = retention
        self.pool = pool
        self.groups = groups
        self.older_than = timedelta(days=retention.days)

    async def once(self) -> dict[str, int] | None:
        """One round; None when refused (logged)."""
        reason = refusal(self.older_than, await topics_keep(self.groups, self.retention.topics))
        if reason is not None:
            log.error("background prune refused", reason=reason, retention_days=self.retention.days)
            return None
        cutoff = datetime.now(timezone.utc) - self.older_than
        deleted = await prune(self.pool, cutoff, batch_size=self.retention.batch_size, pause_s=0.05)
        log.info("background prune", cutoff=cutoff.isoformat(), **deleted)
        return deleted

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: a round at start, then one per interval; a failed round is logged, never fatal."""
        while not stop.is_set():
            try:
                await self.once()
            except Exception as exc:
                (log.warning if is_outage(exc) else log.error)("background prune failed", error=repr(exc))
            try:
                await asyncio.wait_for(stop.wait(), self.retention.interval_s)
            except asyncio.TimeoutError:
                pass
