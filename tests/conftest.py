"""Test infrastructure of DESIGN §8.

Session fixtures start real services: embedded PostgreSQL, a broker and an aiosmtpd sink.
`ORDERSTATUS_TEST_BROKER` picks the broker of the whole integration suite: `embedded` (the tansu
stand-in, the default of `make test`), `apache` (Apache Kafka from Maven Central, `make test-kafka`) or
`docker` (testcontainers). `ORDERSTATUS_TEST_DATABASE_URL` / `ORDERSTATUS_TEST_KAFKA_BOOTSTRAP_SERVERS`
point the fixtures at existing servers instead, and `ORDERSTATUS_TEST_BACKEND=docker` uses
testcontainers for both. When a service cannot start the fixture raises: integration tests fail
loudly, they never skip. Unit tests request none of these fixtures, so they need no services.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from service.adapters.postgres.connection import create_pool
from service.devkit.embedded import EmbeddedPostgres, SmtpSink, scratch_dir
from service.runtime.settings import Settings
from tests.helpers.brokers import BROKER, new_broker
from tests.helpers.cli import settings_env
from tests.helpers.database import SAMPLE_ORDERS, SAMPLE_RULES

BACKEND = os.environ.get("ORDERSTATUS_TEST_BACKEND", "embedded")


def pytest_configure(config):
    """Every scratch directory of the run (Postgres data, brokers' logs, process logs) under one folder of its own,
    removed when the run ends: a run leaves gigabytes of them otherwise, and repeated runs filled a disk.
    `ORDERSTATUS_KEEP_TEST_DIRS=1` keeps the folder to read after a failure."""
    config._orderstatus_scratch = tempfile.mkdtemp(prefix="orderstatus-tests-")
    tempfile.tempdir = config._orderstatus_scratch


def pytest_unconfigure(config):
    scratch = getattr(config, "_orderstatus_scratch", None)
    if scratch is None:
        return
    tempfile.tempdir = None
    if os.environ.get("ORDERSTATUS_KEEP_TEST_DIRS"):
        print(f"\ntest scratch directories kept in {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a Postgres server (database part is replaced per test)."""
    external = os.environ.get("ORDERSTATUS_TEST_DATABASE_URL")
    if external:
        yield external
        return
    if BACKEND == "docker":
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    server = EmbeddedPostgres(scratch_dir("orderstatus-test-pg-")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def session_broker():
    """The suite's own broker of the chosen engine; None when the suite uses an external or docker one."""
    if os.environ.get("ORDERSTATUS_TEST_KAFKA_BOOTSTRAP_SERVERS") or BROKER == "docker":
        yield None
        return
    broker = new_broker("test").start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(session_broker):
    external = os.environ.get("ORDERSTATUS_TEST_KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    if BROKER == "docker":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    yield session_broker.bootstrap_servers


@pytest.fixture(scope="session")
def smtp_sink():
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def mailbox(smtp_sink):
    """The SMTP sink, emptied for this test."""
    assert smtp_sink.mailbox is not None
    with smtp_sink.mailbox.lock:
        smtp_sink.mailbox.messages.clear()
        smtp_sink.mailbox.refuse.clear()
    return smtp_sink


@pytest.fixture(scope="session")
def template_database(postgres_url) -> str:
    """A migrated database used as the template of every test's own database."""
    from service.adapters.postgres.connection import migrate

    name = f"orderstatus_template_{uuid.uuid4().hex[:8]}"
    url = _with_database(postgres_url, name)
    migrate(url)
    return name


@pytest.fixture
def database_url(postgres_url, template_database) -> str:
    """A fresh, migrated, empty database for this test."""
    name = f"t_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(_with_database(postgres_url, "postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return _with_database(postgres_url, name)


@pytest.fixture
async def database_pool(database_url):
    """A pool on the test's own database, closed after the test (the contract suites' Postgres backends)."""
    pool = await create_pool(database_url)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def settings(database_url, kafka_bootstrap, smtp_sink) -> Settings:
    """Settings for this test: its own database, its own topics and consumer groups."""
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        # the production default where the engine supports it (tansu cannot initialise an idempotent producer)
        kafka_enable_idempotence=BROKER != "embedded",
        commands_topic=f"cmd-{suffix}",
        events_topic=f"evt-{suffix}",
        dlq_topic=f"dlq-{suffix}",
        worker_group=f"worker-{suffix}",
        notifier_group=f"notifier-{suffix}",
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        http_port=0,
        notifier_http_port=0,
        retry_initial_s=0.05,
        retry_max_s=0.5,
    )


@pytest.fixture
def cli_env(settings) -> dict[str, str]:
    """Environment for running `orderstatus` as a subprocess against this test's services."""
    return settings_env(settings)


@pytest.fixture
def sample_rules_path() -> Path:
    return SAMPLE_RULES


@pytest.fixture
def sample_orders_path() -> Path:
    return SAMPLE_ORDERS
