"""The apps' configuration objects and broker ports, built from the settings: the one place that knows which
setting (DESIGN §3) configures what. The process entry points (`services.py`) and the commands (`cli/`) call
these; the apps only take what they are given."""

from __future__ import annotations

from service.adapters.kafka.groups import KafkaConsumerGroups
from service.contract.commands import InputLimits
from service.contract.events import Topics
from service.notifier.app import NotifierConfig
from service.ops.lag import PartitionLag, lag
from service.ops.prune import Retention, RetentionJob
from service.runtime.settings import Settings
from service.worker.app import WorkerConfig, relay_lanes
from service.worker.config import ActorCheck, BatchConfig, trust_the_command


def topics(settings: Settings) -> Topics:
    return Topics(events=settings.events_topic, dlq=settings.dlq_topic, max_message_bytes=settings.max_message_bytes)


def input_limits(settings: Settings) -> InputLimits:
    return InputLimits(max_message_bytes=settings.max_message_bytes, max_wire_items=settings.max_wire_items)


def batch_config(settings: Settings, check_actor: ActorCheck = trust_the_command) -> BatchConfig:
    return BatchConfig(topics=topics(settings), max_batch_items=settings.max_batch_items,
                       limits=input_limits(settings), timeout_tries=settings.db_statement_timeout_tries,
                       check_actor=check_actor)


def worker_config(settings: Settings, check_actor: ActorCheck = trust_the_command) -> WorkerConfig:
    return WorkerConfig(commands_topic=settings.commands_topic, batch=batch_config(settings, check_actor),
                        max_poll_records=settings.kafka_max_poll_records,
                        commit_interval_s=settings.kafka_commit_interval_ms / 1000,
                        relay_lanes=relay_lanes(settings.database_pool_size), group=settings.worker_group)


def notifier_config(settings: Settings) -> NotifierConfig:
    return NotifierConfig(events_topic=settings.events_topic, mail_from=settings.mail_from,
                          max_message_bytes=settings.max_message_bytes,
                          max_poll_records=settings.kafka_max_poll_records,
                          commit_interval_s=settings.kafka_commit_interval_ms / 1000,
                          group=settings.notifier_group)


def consumer_groups(settings: Settings) -> KafkaConsumerGroups:
    return KafkaConsumerGroups(settings)


def watched_groups(settings: Settings) -> list[tuple[str, str]]:
    """The worker's group on the commands topic and the notifier's on the events topic."""
    return [(settings.worker_group, settings.commands_topic), (settings.notifier_group, settings.events_topic)]


async def consumer_lags(settings: Settings) -> list[PartitionLag]:
    """`orderstatus lag` and the console: the lag of the worker's and the notifier's groups."""
    return await lag(consumer_groups(settings), watched_groups(settings))


def pruned_topics(settings: Settings) -> tuple[str, ...]:
    """The topics whose retention bounds a prune: commands (processed records), events (notification records),
    DLQ (redrives)."""
    return (settings.commands_topic, settings.events_topic, settings.dlq_topic)


def retention_job(settings: Settings, pool) -> RetentionJob:
    """The worker's background prune (ORDERSTATUS_RETENTION_DAYS must be set)."""
    retention = Retention(days=settings.retention_days, topics=pruned_topics(settings),
                          interval_s=settings.retention_interval_s, batch_size=settings.retention_batch_size)
    return RetentionJob(retention, pool, consumer_groups(settings))
