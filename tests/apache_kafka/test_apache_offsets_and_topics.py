"""End offsets, topic creation and retention on the real engine (issue 19).

On Apache Kafka a partition's "latest" offset (ListOffsets, a fetch's high watermark) is the true end, also
after batches of many records, where the embedded stand-in reports the last batch's base offset + 1. So
here commands go to the broker in a few large batches (the producer lingers) and every reader of the end
must be exact: `orderstatus lag`, the worker's and the notifier's `orderstatus_consumer_lag` gauges and
`/status`, `orderstatus send --wait` and the gateway's outcome reader (both follow the events topic from
its end). `orderstatus topics create` is checked on a three-broker cluster (replica lists, the topics'
`min.insync.replicas`), and `orderstatus prune` against what Apache Kafka reports of its topics' retention
(its defaults, a longer retention set on a topic, and for ever)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import aiohttp
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client.parser import text_string_to_metric_families

from service.devkit.embedded import free_port
from service.entrypoints.services import run_gateway
from service.entrypoints.configs import retention_job
from service.runtime.auth import issue_token, new_key_pair
from service.runtime.settings import Settings
from tests.helpers.cli import ok, run_cli_async, user_error
from tests.helpers.commands import change
from tests.helpers.database import fetch, seed
from tests.helpers.offsets import commit_offsets, committed_offsets
from tests.helpers.probes import get
from tests.helpers.services import running, running_notifier, running_worker
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until

FIRST_ORDER = 70_000
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS  # Apache Kafka's default retention.ms (log.retention.hours=168) and segment.ms


def draft_orders(count: int, first: int = FIRST_ORDER) -> list[dict]:
    """Sales orders in Draft (no status given), each confirmable by staff."""
    return [{"order_id": first + i, "order_type": "SO", "client_id": "c-9",
             "contacts": [{"email": f"o{first + i}@example.com", "kind": "client"}]} for i in range(count)]


def confirmations(orders: list[dict]) -> list[dict]:
    return [change(o["order_id"], "Confirmed") for o in orders]


async def produce_in_large_batches(settings: Settings, commands: list[dict]) -> dict[int, int]:
    """Send every command before awaiting any, through a producer that lingers a second with room for 1 MiB
    per batch, so each partition gets its share in one or a few batches of many records. Returns how many
    records each partition got (they are the only records there, so also each partition's end)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                enable_idempotence=True, linger_ms=1000, max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [await producer.send(settings.commands_topic, json.dumps(c).encode(),
                                       key=str(c["order_id"]).encode()) for c in commands]
        placed = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return dict(Counter(meta.partition for meta in placed))


async def produce_in_transactions(settings: Settings, transactions: list[tuple[list[dict], bool]]) -> dict[int, int]:
    """Send each list of commands in a transaction of its own, committed or aborted as told, as an upstream
    service with a transactional producer does (each transaction leaves a marker, a control record, after
    its records in every partition it wrote to). Returns how many records of ours each partition got."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                transactional_id=f"upstream-{uuid.uuid4().hex[:8]}", linger_ms=1000,
                                max_batch_size=1 << 20)
    await producer.start()
    counts: Counter = Counter()
    try:
        for commands, commit in transactions:
            await producer.begin_transaction()
            futures = [await producer.send(settings.commands_topic, json.dumps(c).encode(),
                                           key=str(c["order_id"]).encode()) for c in commands]
            counts.update(meta.partition for meta in await asyncio.gather(*futures))
            await (producer.commit_transaction() if commit else producer.abort_transaction())
    finally:
        await producer.stop()
    return dict(counts)


def metric_samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def lag_gauges(port: int) -> dict[str, float]:
    """`orderstatus_consumer_lag` of one process: "topic:partition" -> value."""
    status, body = await get(port, "/metrics")
    assert status == 200
    return {f"{dict(labels)['topic']}:{dict(labels)['partition']}": value
            for (name, labels), value in metric_samples(body).items() if name == "orderstatus_consumer_lag"}


async def lag_rows(env: dict[str, str]) -> list[dict]:
    return json.loads(ok(await run_cli_async(env, "lag", "--json")).stdout)


def by_partition(rows: list[dict], group: str) -> dict[int, tuple]:
    """(committed, end, lag) per partition of one group's rows of `orderstatus lag --json`."""
    return {r["partition"]: (r["committed"], r["end"], r["lag"]) for r in rows if r["group"] == group}


def event_counts(reader: TopicReader) -> dict[int, int]:
    """How many records each partition of the events topic holds, as read from its beginning."""
    return dict(Counter(record.partition for record in reader.records))


class TestEndOffsets:
    async def test_apache_lag_counts_exactly_what_is_unconsumed_and_drops_to_zero(self, settings, cli_env):
        """Hundreds of commands in a few large batches: `orderstatus lag` shows the exact end and lag before any
        worker, with a group committed part of the way and after everything is processed (0 and committed = end
        for the worker and the notifier), as do both processes' lag gauges and /status; and again after a
        second burst while they run."""
        orders = draft_orders(600)
        await seed(settings, orders)
        first, second = confirmations(orders[:300]), confirmations(orders[300:])
        ends = await produce_in_large_batches(settings, first)
        assert sum(ends.values()) == 300 and len(ends) == 3, ends

        before = await lag_rows(cli_env)
        assert by_partition(before, settings.worker_group) == {p: (None, e, e) for p, e in ends.items()}
        assert by_partition(before, settings.notifier_group) == {p: (None, 0, 0) for p in range(3)}

        part_way = {p: e // 3 for p, e in ends.items()}  # what a stopped worker might have left committed
        await commit_offsets(settings, settings.worker_group, settings.commands_topic, part_way)
        assert by_partition(await lag_rows(cli_env), settings.worker_group) == {
            p: (part_way[p], e, e - part_way[p]) for p, e in ends.items()}
        await commit_offsets(settings, settings.worker_group, settings.commands_topic, {p: 0 for p in ends})

        worker_port, notifier_port = free_port(), free_port()
        settings = settings.model_copy(update={"http_port": worker_port, "notifier_http_port": notifier_port})
        async with running_worker(settings), running_notifier(settings), \
                TopicReader(settings, settings.events_topic) as reader:
            for burst, commands in enumerate((first, second)):
                if burst:
                    more = await produce_in_large_batches(settings, commands)
                    ends = {p: ends[p] + more.get(p, 0) for p in ends}
                await events_for(reader, {c["command_id"] for c in commands}, timeout=90)
                event_ends = event_counts(reader)
                assert sum(event_ends.values()) == sum(ends.values()), (event_ends, ends)
                expected = {settings.worker_group: {p: (e, e, 0) for p, e in ends.items()},
                            settings.notifier_group: {p: (event_ends.get(p, 0) or None, event_ends.get(p, 0), 0)
                                                      for p in range(3)}}
                seen: list = []

                async def caught_up():
                    rows = await lag_rows(cli_env)
                    seen[:] = [{group: by_partition(rows, group) for group in expected}]
                    return seen[0] == expected

                try:
                    await wait_until(caught_up, 60, "both groups to commit exactly the end", interval=0.5)
                except AssertionError as exc:
                    raise AssertionError(f"{exc}; expected {expected}, last seen {seen}") from None

                zero = {f"{settings.commands_topic}:{p}": 0 for p in range(3)}
                zero_events = {f"{settings.events_topic}:{p}": 0 for p in range(3)}
                for port, want in ((worker_port, zero), (notifier_port, zero_events)):
                    await wait_until(lambda: _gauges_are(port, want), 30, f"lag gauges {want}", interval=0.5)
                    status, body = await get(port, "/status")
                    assert status == 200 and body["lag"] == want, body


    async def test_apache_commands_from_a_transactional_producer_leave_no_lag(self, settings, cli_env):
        """Commands from an upstream transactional producer (three committed transactions of 100, one aborted
        of 50 between them): the committed ones are applied, the aborted ones never; then the worker's
        committed offsets are the partitions' ends, past the transaction markers and the aborted records, so
        `orderstatus lag` and the lag gauge both say exactly 0."""
        orders = draft_orders(350, first=FIRST_ORDER + 1000)
        await seed(settings, orders)
        commands, aborted = confirmations(orders[:300]), confirmations(orders[300:])
        counts = await produce_in_transactions(settings, [(commands[:100], True), (aborted, False),
                                                          (commands[100:200], True), (commands[200:], True)])
        assert sum(counts.values()) == 350

        port = free_port()
        settings = settings.model_copy(update={"http_port": port})
        async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
            await events_for(reader, {c["command_id"] for c in commands}, timeout=90)
            seen: list = []

            async def caught_up():
                rows = by_partition(await lag_rows(cli_env), settings.worker_group)
                seen[:] = [rows]
                return all(lag == 0 and committed == end for committed, end, lag in rows.values())

            try:
                await wait_until(caught_up, 60, "the worker's lag at 0, committed at the end", interval=0.5)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; records per partition {counts}, last seen {seen}") from None
            # each partition's end is past its records: the markers of the transactions that wrote to it
            assert all(end > counts.get(p, 0) for p, (_, end, _) in seen[0].items() if counts.get(p))
            zero = {f"{settings.commands_topic}:{p}": 0 for p in range(3)}
            await wait_until(lambda: _gauges_are(port, zero), 30, f"lag gauges {zero}", interval=0.5)
            assert not {c["command_id"] for c in aborted} & {v.get("command_id") for v in reader.values()}
        rows = await fetch(settings, "SELECT status_id, count(*) AS n FROM orders WHERE order_id >= $1 "
                                     "GROUP BY 1 ORDER BY 1", FIRST_ORDER + 1000)
        assert [(r["status_id"], r["n"]) for r in rows] == [(1, 50), (2, 300)]  # Draft: the aborted ones


async def _gauges_are(port: int, want: dict[str, float]) -> bool:
    return await lag_gauges(port) == want


class TestOutcomeReaders:
    async def test_apache_send_wait_gets_every_outcome_of_many_commands_at_once(self, settings, cli_env, tmp_path):
        """`send --wait --file` with 400 commands (sent in large batches, answered in large batches by the relay,
        after a first burst filled the events topic): every command's OrderStatusChanged is printed, exit 0."""
        orders = draft_orders(700)
        await seed(settings, orders)
        async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
            earlier = confirmations(orders[:300])
            await produce_in_large_batches(settings, earlier)
            await events_for(reader, {c["command_id"] for c in earlier}, timeout=90)

            commands = confirmations(orders[300:])
            path = tmp_path / "commands.jsonl"
            path.write_text("".join(json.dumps(c) + "\n" for c in commands))
            result = await run_cli_async(cli_env, "send", "--wait", "--timeout", "90", "--file", str(path),
                                         timeout=150)
        assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        sent, events = lines[:len(commands)], lines[len(commands):]
        assert [s["command_id"] for s in sent] == [c["command_id"] for c in commands]
        assert [(e["type"], e["command_id"], e["order_id"], e["to_status"]["code"]) for e in events] == [
            ("OrderStatusChanged", c["command_id"], c["order_id"], "Confirmed") for c in commands]

    async def test_apache_gateway_answers_every_request_of_a_burst(self, settings, tmp_path):
        """200 concurrent Wordbee status changes through the gateway: each request gets its own outcome (200),
        none a 202, and every order is Confirmed once."""
        private, public = new_key_pair()
        key_path = tmp_path / "public.pem"
        key_path.write_bytes(public)
        signing_path = tmp_path / "signing.pem"  # the gateway signs each command's own token (issue 23)
        signing_path.write_bytes(private)
        orders = draft_orders(200)
        await seed(settings, orders)
        secured = settings.model_copy(update={
            "actor_auth": "required", "auth_public_keys": str(key_path), "auth_issuer": "https://id.example.com",
            "auth_audience": "orderstatus", "gateway_signing_key_file": str(signing_path),
            "gateway_port": free_port(), "gateway_wait_s": 60.0,
            # one principal's burst: the per-caller limit (issue 23) is not what this test is about
            "gateway_max_in_flight": 256, "gateway_max_in_flight_per_principal": 256})
        bearer = issue_token(private, sub="staff-1", role="staff", issuer="https://id.example.com",
                             audience="orderstatus")
        base = f"http://127.0.0.1:{secured.gateway_port}"
        async with running_worker(secured), running(run_gateway, secured, "gateway"), \
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
            async def confirm(order_id: int) -> tuple[int, str]:
                async with session.put(f"{base}/api/orders/{order_id}/status", json={"status": 2},
                                       headers={"Authorization": f"Bearer {bearer}"}) as response:
                    return response.status, await response.text()

            answers = await asyncio.gather(*(confirm(o["order_id"]) for o in orders))
        assert Counter(status for status, _ in answers) == {200: len(orders)}, answers[:5]
        rows = await fetch(secured, "SELECT status_id, count(*) AS n FROM orders WHERE order_id >= $1 GROUP BY 1",
                           FIRST_ORDER)
        assert [(r["status_id"], r["n"]) for r in rows] == [(2, len(orders))]



DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs v1+: a value set on the topic itself


async def describe_topics(bootstrap: str, topics: list[str]) -> dict[str, dict]:
    """Per topic: its partitions' (replicas, in-sync replicas) and its configuration as
    {name: (value, set on the topic itself)}."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = {}
        for entry in await admin.describe_topics(topics):
            assert not entry["error_code"], entry
            described[entry["topic"]] = {"partitions": {p["partition"]: (sorted(p["replicas"]), sorted(p["isr"]))
                                                        for p in entry["partitions"]}}
        for response in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics]):
            for error_code, _, _, name, entries, *_ in response.resources:
                assert not error_code, (name, error_code)
                described[name]["configs"] = {e[0]: (e[1], _set_on_topic(e)) for e in entries}
        return described
    finally:
        await admin.close()


def _set_on_topic(entry) -> bool:
    if len(entry) >= 6:  # v1+: (name, value, read_only, config_source, is_sensitive, synonyms)
        return entry[3] == DYNAMIC_TOPIC_CONFIG
    return not entry[3]  # v0: (name, value, read_only, is_default, is_sensitive)


async def set_topic_configs(settings: Settings, topic: str, configs: dict[str, str]) -> None:
    """Set configuration values on a topic (AlterConfigs: these become the topic's only own values)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        for response in await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)]):
            assert all(not error_code for error_code, *_ in response.resources), response
    finally:
        await admin.close()
    await wait_until(lambda: _configs_show(settings, topic, configs), 30, f"{topic} to report {configs}", interval=0.2)


async def _configs_show(settings: Settings, topic: str, configs: dict[str, str]) -> bool:
    found = (await describe_topics(settings.kafka_bootstrap_servers, [topic]))[topic]["configs"]
    return all(found.get(name, (None,))[0] == value for name, value in configs.items())


def names_env(env: dict[str, str], tag: str) -> tuple[dict[str, str], list[str]]:
    """The environment with three topic names of its own (commands, events, DLQ), and those names."""
    names = [f"{kind}-{tag}-{uuid.uuid4().hex[:6]}" for kind in ("cmd", "evt", "dlq")]
    return {**env, "ORDERSTATUS_COMMANDS_TOPIC": names[0], "ORDERSTATUS_EVENTS_TOPIC": names[1],
            "ORDERSTATUS_DLQ_TOPIC": names[2]}, names


async def insert_processed(settings: Settings, ages_in_days: dict[str, int]) -> None:
    """Processed-command records of the given ages."""
    now = datetime.now(timezone.utc)
    for command_id, days in ages_in_days.items():
        await fetch(settings, "INSERT INTO processed_commands (command_id, command_type, outcome, processed_at) "
                              "VALUES ($1, 'ChangeOrderStatus', 'applied', $2)", command_id, now - timedelta(days=days))


async def _processed_ids_are(settings: Settings, ids: list[str]) -> bool:
    return sorted(r["command_id"] for r in await fetch(settings, "SELECT command_id FROM processed_commands")) == ids


class TestPruneReadsTheTopicsRetention:
    async def test_apache_default_retention_allows_a_longer_one_without_force(self, settings, cli_env):
        """Apache Kafka reports its defaults (retention.ms and segment.ms 7 days each: up to 14 days kept): prune
        --older-than 15d runs without --force and deletes what is older; 13d is refused, naming the 14 days."""
        ok(await run_cli_async(cli_env, "topics", "create", "--partitions", "1"))
        await insert_processed(settings, {"old": 20, "recent": 10})

        line = user_error(await run_cli_async(cli_env, "prune", "--older-than", "13d"), "prune refused",
                          f"retention.ms={WEEK_MS} + segment.ms={WEEK_MS}", "14d")
        assert settings.commands_topic in line

        done = ok(await run_cli_async(cli_env, "prune", "--older-than", "15d")).stdout
        for topic in (settings.commands_topic, settings.events_topic, settings.dlq_topic):
            assert f"topic {topic}: keeps messages up to 14d (retention.ms={WEEK_MS} + segment.ms={WEEK_MS})" in done
        assert "processed_commands: deleted 1 row" in done.splitlines()
        assert await _processed_ids_are(settings, ["recent"])

    async def test_apache_background_prune_reads_the_same_defaults(self, settings):
        """The worker's background prune: ORDERSTATUS_RETENTION_DAYS=13 is refused against the 14 days Apache Kafka
        reports; 15 prunes the 20-day-old record and keeps the 10-day-old one."""
        await seed(settings)
        await insert_processed(settings, {"old": 20, "recent": 10})
        assert await retention_job(settings.model_copy(update={"retention_days": 13}), None).once() is None
        pruning = settings.model_copy(update={"retention_days": 15, "retention_interval_s": 0.5})
        async with running_worker(pruning):
            await wait_until(lambda: _processed_ids_are(settings, ["recent"]), 30, "the background prune")

    async def test_apache_a_longer_retention_set_on_a_topic_is_read(self, settings, cli_env):
        """A 40-day retention.ms set on the events topic (segment.ms still the 7-day default): 30d is refused
        naming that topic and its 47 days; 50d runs without --force."""
        ok(await run_cli_async(cli_env, "topics", "create", "--partitions", "1"))
        await set_topic_configs(settings, settings.events_topic, {"retention.ms": str(40 * DAY_MS)})
        user_error(await run_cli_async(cli_env, "prune", "--older-than", "30d"), "prune refused",
                   settings.events_topic, "47d")
        done = ok(await run_cli_async(cli_env, "prune", "--older-than", "50d", "--dry-run")).stdout
        assert f"topic {settings.events_topic}: keeps messages up to 47d" in done

    async def test_apache_a_topic_keeping_messages_for_ever_is_refused(self, settings, cli_env):
        """retention.ms=-1 on the DLQ topic: refused for any retention, even ten years, unless --force (then
        a warning); cleanup.policy=compact on the commands topic is refused as well."""
        ok(await run_cli_async(cli_env, "topics", "create", "--partitions", "1"))
        await set_topic_configs(settings, settings.dlq_topic, {"retention.ms": "-1"})
        user_error(await run_cli_async(cli_env, "prune", "--older-than", "3650d"), "prune refused",
                   f"{settings.dlq_topic}: keeps messages for ever (retention.ms=-1)")
        forced = ok(await run_cli_async(cli_env, "prune", "--older-than", "3650d", "--force"))
        assert "warning: forced past the check" in forced.stderr and "keeps messages for ever" in forced.stderr

        await set_topic_configs(settings, settings.dlq_topic, {"retention.ms": str(DAY_MS)})
        await set_topic_configs(settings, settings.commands_topic, {"cleanup.policy": "compact"})
        user_error(await run_cli_async(cli_env, "prune", "--older-than", "3650d"), "prune refused",
                   f"{settings.commands_topic}: keeps messages for ever (cleanup.policy=compact)")


class TestTopicsCreateOnACluster:
    async def test_apache_replication_factor_and_min_insync_replicas_by_default(self, kafka_cluster, cli_env):
        """`--replication-factor 3` on three brokers: every partition of the three topics has three distinct
        replicas, all in sync, and each topic has min.insync.replicas=2 set on itself; with
        `--replication-factor 2` the default is 1, set on the topic (the cluster's own default is 2)."""
        env = {**cli_env, "ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS": kafka_cluster.bootstrap_servers}
        brokers = [1, 2, 3]
        for replicas, min_insync in ((3, "2"), (2, "1")):
            topic_env, names = names_env(env, f"rf{replicas}")
            out = ok(await run_cli_async(topic_env, "topics", "create", "--partitions", "3",
                                         "--replication-factor", replicas)).stdout
            assert out.splitlines() == [f"{name}: created" for name in names]
            described = await describe_topics(kafka_cluster.bootstrap_servers, names)
            for name in names:
                partitions = described[name]["partitions"]
                assert sorted(partitions) == [0, 1, 2], (name, partitions)
                for replica_list, in_sync in partitions.values():
                    assert len(set(replica_list)) == replicas and set(replica_list) <= set(brokers), partitions
                    assert in_sync == replica_list, partitions
                assert described[name]["configs"]["min.insync.replicas"] == (min_insync, True), name

    async def test_apache_min_insync_replicas_can_be_chosen(self, kafka_cluster, cli_env):
        """`--replication-factor 3 --min-insync-replicas 3` sets 3 on every topic; a value above the replication
        factor is refused in one line and creates nothing."""
        env = {**cli_env, "ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS": kafka_cluster.bootstrap_servers}
        topic_env, names = names_env(env, "mir3")
        ok(await run_cli_async(topic_env, "topics", "create", "--replication-factor", "3",
                               "--min-insync-replicas", "3"))
        described = await describe_topics(kafka_cluster.bootstrap_servers, names)
        assert {name: described[name]["configs"]["min.insync.replicas"] for name in names} == {
            name: ("3", True) for name in names}

        topic_env, names = names_env(env, "mir4")
        user_error(await run_cli_async(topic_env, "topics", "create", "--replication-factor", "3",
                                       "--min-insync-replicas", "4"), "--min-insync-replicas 4",
                   "replication factor 3")
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers)
        await admin.start()
        try:
            assert not set(names) & set(await admin.list_topics())
        finally:
            await admin.close()

    async def test_apache_a_replication_factor_above_the_brokers_is_one_clear_line(self, kafka_cluster, cli_env):
        """`--replication-factor 4` on three brokers: the broker's refusal (InvalidReplicationFactor and its
        message) in one line, exit 1, instead of "created" and a wait for leaders that never come."""
        env = {**cli_env, "ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS": kafka_cluster.bootstrap_servers}
        topic_env, names = names_env(env, "rf4")
        user_error(await run_cli_async(topic_env, "topics", "create", "--replication-factor", "4"),
                   f"topic {names[0]} not created", "InvalidReplicationFactor", "3 broker")
