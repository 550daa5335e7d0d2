"""Retention (issue 11): `orderstatus prune` and the worker's background prune against real Postgres and the
broker's topic configuration. Prune refuses a retention shorter than the topics keep their messages (or
one the broker does not report) and deletes only what is old and finished."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.devkit.embedded import EmbeddedBroker, scratch_dir
from service.entrypoints.configs import retention_job
from service.runtime.settings import Settings
from tests.helpers.cli import ok, run_cli_async, user_error
from tests.helpers.database import fetch, seed
from tests.helpers.services import running_worker
from tests.helpers.waiting import wait_until

DAY_MS = 86_400_000
SEGMENT_MS = DAY_MS // 2  # set explicitly: Apache Kafka reports its 7-day default, the embedded broker none
NOW = datetime.now(timezone.utc)
OLD, RECENT = NOW - timedelta(days=40), NOW - timedelta(days=1)


async def create_topics(settings: Settings, retention_ms: int) -> None:
    """The three topics, each keeping messages for `retention_ms` in segments of half a day."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        configs = {"retention.ms": str(retention_ms), "segment.ms": str(SEGMENT_MS)}
        await admin.create_topics([NewTopic(topic, 3, 1, topic_configs=configs) for topic in
                                   (settings.commands_topic, settings.events_topic, settings.dlq_topic)])
    finally:
        await admin.close()


async def rows(settings: Settings) -> dict[str, set]:
    """What is left: outbox payloads, processed command ids, notification recipients."""
    return {
        "outbox": {bytes(r["payload"]).decode() for r in await fetch(settings, "SELECT payload FROM outbox")},
        "processed": {r["command_id"] for r in await fetch(settings, "SELECT command_id FROM processed_commands")},
        "sent": {r["recipient"] for r in await fetch(settings, "SELECT recipient FROM sent_notifications")},
    }


async def old_and_new_rows(settings: Settings) -> None:
    """Rows on both sides of a 30-day retention, finished and unfinished."""
    outbox = [  # (payload, created_at, published_at, parked_at, shard): shard 1's cursor passes its first row
        ("old-published-1", OLD, OLD, None, 0), ("old-published-2", OLD, OLD, None, 0),
        ("old-published-by-cursor", OLD, None, None, 1), ("old-after-the-cursor", OLD, None, None, 1),
        ("old-unpublished", OLD, None, None, 0), ("old-parked", OLD, None, OLD, 0),
        ("recent-published", RECENT, RECENT, None, 0),
    ]
    for payload, created, published, parked, shard in outbox:
        await fetch(settings, "INSERT INTO outbox (topic, payload, created_at, published_at, parked_at, shard) "
                              "VALUES ('evt', $1, $2, $3, $4, $5)", payload.encode(), created, published, parked, shard)
    await fetch(settings, "INSERT INTO outbox_cursor (shard, published_through) "
                          "SELECT 1, id FROM outbox WHERE payload = 'old-published-by-cursor'")
    for command_id, outcome, at in [("old-applied", "applied", OLD), ("old-invalid", "invalid:not_json", OLD),
                                    ("@redrive:dlq:0:1", "redrive:applied", OLD), ("recent", "applied", RECENT)]:
        await fetch(settings, "INSERT INTO processed_commands (command_id, command_type, outcome, processed_at) "
                              "VALUES ($1, 'ChangeOrderStatus', $2, $3)", command_id, outcome, at)
    for recipient, status, at in [("old-sent@x", "sent", OLD), ("old-failed@x", "failed", OLD),
                                  ("old-sending@x", "sending", OLD), ("recent-sent@x", "sent", RECENT)]:
        await fetch(settings, "INSERT INTO sent_notifications (event_id, recipient, status, sent_at) "
                              "VALUES ($1, $2, $3, $4)", uuid.uuid4(), recipient, status, at)


KEPT = {
    "outbox": {"old-after-the-cursor", "old-unpublished", "old-parked", "recent-published"},
    "processed": {"recent"},
    "sent": {"old-sending@x", "recent-sent@x"},
}


async def test_prune_refuses_a_retention_shorter_than_the_topics_keep_messages(settings, cli_env):
    """Topics keeping messages 2 days in half-day segments (so up to 2.5 days): 1 day is refused (nothing
    deleted), also from ORDERSTATUS_RETENTION_DAYS; 3 days is accepted."""
    await create_topics(settings, 2 * DAY_MS)
    await seed(settings)
    await old_and_new_rows(settings)
    before = await rows(settings)
    user_error(await run_cli_async(cli_env, "prune", "--older-than", "1d"), "prune refused",
               f"{settings.commands_topic}: keeps messages up to 2.5d (retention.ms=172800000 + segment.ms=43200000)",
               "re-apply commands")
    user_error(await run_cli_async({**cli_env, "ORDERSTATUS_RETENTION_DAYS": "1"}, "prune"), "prune refused")
    assert await rows(settings) == before
    done = ok(await run_cli_async(cli_env, "prune", "--older-than", "3d", "--dry-run")).stdout.splitlines()
    assert f"topic {settings.events_topic}: keeps messages up to 2.5d (retention.ms=172800000 + segment.ms=43200000)" in done
    assert "outbox: would delete 3 rows" in done and "sent_notifications: would delete 2 rows" in done
    assert await rows(settings) == before


async def test_prune_refuses_when_the_broker_cannot_tell_a_topics_retention_unless_forced(settings, cli_env):
    """A topic whose retention the broker cannot tell (here the DLQ topic does not exist): refused with the
    reason; --force prunes and says it was forced."""
    await seed(settings)
    await old_and_new_rows(settings)
    cli_env = {**cli_env, "ORDERSTATUS_DLQ_TOPIC": f"missing-{uuid.uuid4().hex[:8]}"}
    user_error(await run_cli_async(cli_env, "prune"), "prune refused", "retention unknown", "--force")
    forced = ok(await run_cli_async(cli_env, "prune", "--force"))
    assert "warning: forced past the check" in forced.stderr
    assert await rows(settings) == KEPT


async def test_prune_deletes_only_old_finished_rows_in_bounded_batches(settings, cli_env):
    """A dry run counts and deletes nothing; the prune (one row per statement) deletes old published outbox
    rows, old processed records and old sent/failed notifications, and keeps unpublished, parked, `sending`
    and recent rows."""
    await create_topics(settings, DAY_MS)
    await seed(settings)
    await old_and_new_rows(settings)
    before = await rows(settings)
    dry = ok(await run_cli_async(cli_env, "prune", "--older-than", "30d", "--dry-run")).stdout.splitlines()
    assert dry[3:6] == ["outbox: would delete 3 rows", "processed_commands: would delete 3 rows",
                        "sent_notifications: would delete 2 rows"]
    assert dry[-1].endswith("(dry run)") and await rows(settings) == before

    done = ok(await run_cli_async(cli_env, "prune", "--older-than", "30d", "--batch-size", "1")).stdout.splitlines()
    assert done[3:6] == ["outbox: deleted 3 rows", "processed_commands: deleted 3 rows",
                         "sent_notifications: deleted 2 rows"]
    assert await rows(settings) == KEPT
    again = ok(await run_cli_async(cli_env, "prune", "--older-than", "30d")).stdout.splitlines()
    assert again[3:6] == ["outbox: deleted 0 rows", "processed_commands: deleted 0 rows",
                          "sent_notifications: deleted 0 rows"]


async def test_the_worker_prunes_in_the_background_when_retention_days_is_set(settings):
    """ORDERSTATUS_RETENTION_DAYS=30 with topics keeping a day: the running worker deletes the old finished rows;
    a retention shorter than the topics' is refused by the job itself."""
    await create_topics(settings, DAY_MS)
    await seed(settings)
    await old_and_new_rows(settings)
    refused = retention_job(settings.model_copy(update={"retention_days": 0.5}), None)
    assert await refused.once() is None  # refused before it touches the database (it has none here)
    pruning = settings.model_copy(update={"retention_days": 30, "retention_interval_s": 0.5})
    async with running_worker(pruning):
        await wait_until(lambda: _pruned(settings), 30, "the background prune")


async def _pruned(settings: Settings) -> bool:
    return await rows(settings) == KEPT


class TestPruneUnderTheDevStack:
    """Issue 20: topics made by `topics create` on the embedded broker (as `orderstatus dev` makes them)."""

    async def test_on_the_embedded_broker_a_dry_run_counts_and_the_refusal_says_what_to_do(self, settings, cli_env):
        """Embedded-broker specific (a private one, whatever the suite's engine): it reports no retention, so
        `--dry-run` counts and warns; `prune` is refused in one line naming --force, why it is safe under
        `orderstatus dev`, and `topics create --retention`."""
        broker = EmbeddedBroker(log_path=scratch_dir("orderstatus-prune-broker-") / "tansu.log")
        await asyncio.to_thread(broker.start)
        try:
            settings = settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers,
                                                   "kafka_enable_idempotence": False})
            cli_env = {**cli_env, "ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                       "ORDERSTATUS_KAFKA_ENABLE_IDEMPOTENCE": "false"}
            await self._refused_with_what_to_do(settings, cli_env)
        finally:
            await asyncio.to_thread(broker.stop)

    async def _refused_with_what_to_do(self, settings, cli_env) -> None:
        ok(await run_cli_async(cli_env, "topics", "create", "--partitions", "1"))
        await seed(settings)
        await old_and_new_rows(settings)
        before = await rows(settings)
        dry = ok(await run_cli_async(cli_env, "prune", "--dry-run"))
        assert "outbox: would delete 3 rows" in dry.stdout.splitlines()
        assert "a prune without --dry-run would be refused" in dry.stderr and "--force" in dry.stderr
        user_error(await run_cli_async(cli_env, "prune"), "prune refused", "retention unknown", "--force",
                   "orderstatus dev", "topics create --retention")
        assert await rows(settings) == before

    async def test_topics_created_with_a_retention_let_prune_run_unforced(self, settings, cli_env):
        """`topics create --retention 7d` sets retention.ms (and a one-day segment.ms) the broker reports, so a
        30-day prune runs without --force, and a 1-day one is refused for the right reason."""
        ok(await run_cli_async(cli_env, "topics", "create", "--partitions", "1", "--retention", "7d"))
        await seed(settings)
        await old_and_new_rows(settings)
        for command_id, at in (("idem-old", OLD), ("idem-recent", RECENT)):  # the gateway's key bindings age too
            await fetch(settings, "INSERT INTO idempotency_keys (command_id, fingerprint, created_at) "
                                  "VALUES ($1, 'f', $2)", command_id, at)
        done = ok(await run_cli_async(cli_env, "prune", "--older-than", "30d"))
        assert f"topic {settings.commands_topic}: keeps messages up to 8d (retention.ms=604800000 + " \
               f"segment.ms=86400000)" in done.stdout.splitlines()
        assert "outbox: deleted 3 rows" in done.stdout.splitlines() and done.stderr == ""
        assert await rows(settings) == KEPT
        assert "idempotency_keys: deleted 1 row" in done.stdout.splitlines()
        assert [r["command_id"] for r in await fetch(settings, "SELECT command_id FROM idempotency_keys")] == [
            "idem-recent"]
        user_error(await run_cli_async(cli_env, "prune", "--older-than", "1d"), "prune refused", "up to 8d")
        user_error(await run_cli_async(cli_env, "topics", "create", "--retention", "soon"), "--retention")
