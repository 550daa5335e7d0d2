"""Fresh infrastructure for one scenario (DESIGN §8): embedded PostgreSQL migrated and seeded with the
sample rules and the bench's orders, and a broker with the three topics — the tansu stand-in, or one
Apache Kafka node (`--broker apache`). Torn down afterwards, so no scenario sees another's data, backlog
or consumer groups."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from service.adapters.kafka.admin import create_topics
from service.adapters.postgres.connection import migrate
from service.devkit.apache_kafka import ApacheKafka
from service.devkit.embedded import EmbeddedBroker, EmbeddedPostgres, scratch_dir
from service.runtime.settings import Settings
from testkit.seeding import seed_database

PREFIX = "ORDERSTATUS_"


@dataclass
class Infra:
    postgres: EmbeddedPostgres
    broker: EmbeddedBroker | ApacheKafka
    settings: Settings
    partitions: int
    scratch: Path

    @property
    def broker_pid(self) -> int:
        process = self.broker.nodes[0].process if isinstance(self.broker, ApacheKafka) else self.broker.process
        assert process is not None
        return process.pid

    def env(self, overrides: dict[str, str]) -> dict[str, str]:
        """The environment of a worker process: this infrastructure, the production idempotence setting where
        the engine supports it (tansu cannot initialise an idempotent producer), WARNING logs, an ephemeral
        HTTP port; then `overrides`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
        env.update({
            "ORDERSTATUS_DATABASE_URL": self.postgres.url,
            "ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "ORDERSTATUS_KAFKA_ENABLE_IDEMPOTENCE": str(self.settings.kafka_enable_idempotence).lower(),
            "ORDERSTATUS_LOG_LEVEL": "WARNING",
            "ORDERSTATUS_HTTP_PORT": "0",
        })
        env.update(overrides)
        return env


def order_records(order_ids) -> list[dict]:
    """The bench's orders as the orders file has them: type SO, status Confirmed."""
    return [{"order_id": oid, "order_type": "SO", "status": "Confirmed"} for oid in order_ids]


@contextlib.asynccontextmanager
async def fresh_infra(order_ids: list[int], partitions: int, broker_kind: str = "embedded") -> AsyncIterator[Infra]:
    """Start Postgres and the broker (`embedded` or `apache`), migrate, load the sample rules, seed
    `order_ids` (type SO, status Confirmed) and create the topics with `partitions` partitions; stop and
    delete everything after."""
    scratch = scratch_dir("orderstatus-bench-")
    postgres = EmbeddedPostgres(scratch / "pg")
    broker = ApacheKafka(scratch / "kafka") if broker_kind == "apache" else EmbeddedBroker()
    try:
        postgres.start()
        broker.start()
        await asyncio.to_thread(migrate, postgres.url)  # alembic runs its own event loop
        settings = Settings(database_url=postgres.url, kafka_bootstrap_servers=broker.bootstrap_servers,
                            kafka_enable_idempotence=broker_kind == "apache", http_port=0, log_level="WARNING")
        await seed_database(postgres.url, order_records(order_ids))  # the sample rules, as the tests seed them
        await create_topics(settings, partitions, 1)
        yield Infra(postgres, broker, settings, partitions, scratch)
    finally:
        broker.stop()
        postgres.stop()
        shutil.rmtree(scratch, ignore_errors=True)
