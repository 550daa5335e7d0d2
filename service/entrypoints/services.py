"""The long-running processes, wired: open the pool, the Kafka clients and the HTTP server, run the
app until `stop`, close everything. `orderstatus worker|notifier` call these under signal handling;
tests run them in-process."""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

import structlog
from aiohttp import web

from service.adapters.kafka.clients import make_consumer, make_producer
from service.adapters.kafka.consumer import KafkaConsumer
from service.adapters.kafka.published import KafkaPublishedEvents
from service.adapters.kafka.renewing import RenewingProducer
from service.adapters.kafka.replies import EventsTail
from service.adapters.postgres.command_records import PostgresCommandRecords
from service.adapters.postgres.connection import create_pool, writable_server
from service.adapters.postgres.notifications import PostgresNotificationStore
from service.adapters.postgres.views import PostgresReadViews
from service.adapters.smtp import Mailer
from service.contract.commands import InputLimits
from service.entrypoints.configs import notifier_config, retention_job, worker_config
from service.gateway.app import Gateway
from service.gateway.limits import InFlight
from service.notifier.app import Notifier, partition_fetch_bytes
from service.queries.http import routes as read_routes
from service.runtime.auth import ActorCheck, CommandSigner, TokenVerifier, bearer
from service.runtime.health import Progress, bound_port, request_metrics, serve, start_http, watch_health
from service.runtime.heartbeat import assigned, heartbeating, progress_report
from service.runtime import tracing
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry, Stopping
from service.runtime.settings import Settings
from service.worker.app import CommandWorker

log = structlog.get_logger("orderstatus.process")


def token_verifier(settings: Settings) -> TokenVerifier | None:
    """The verifier of actor tokens (keys are read once, at start-up): whenever keys are configured — also with
    ACTOR_AUTH=off, so a presented token is checked on every face — and None only with auth off and no keys."""
    if settings.actor_auth == "off" and not (settings.auth_jwks_file or settings.auth_public_keys):
        return None
    return TokenVerifier.from_files(settings.auth_jwks_file, settings.auth_public_keys, settings.auth_issuer,
                                    settings.auth_audience, settings.auth_leeway_s)


class _Process:
    """What every process has: metrics, readiness, the outage policy and a pool opened through it."""

    def __init__(self, name: str, settings: Settings) -> None:
        tracing.configure(name)  # on only with OTEL_EXPORTER_OTLP_ENDPOINT
        self.metrics = Metrics(name)
        self.progress = Progress(settings.ready_stall_seconds)
        self.retry = OutageRetry(settings.retry_initial_s, settings.retry_max_s, self.metrics, self.progress)

    async def open_pool(self, settings: Settings, stop: asyncio.Event):
        """The pool, once Postgres answers; None when `stop` is set while it still does not (SIGTERM at
        start-up must not wait for a database that may never come)."""
        try:
            async for attempt in self.retry("postgres", stop):
                with attempt:
                    pool = await create_pool(settings.database_url.get_secret_value(),
                                             size=settings.database_pool_size,
                                             statement_timeout_s=settings.db_statement_timeout_s,
                                             lock_timeout_s=settings.db_lock_timeout_s)
        except Stopping:
            log.info("stopped before Postgres could be reached")
            return None
        self.retry.resumed()
        return pool

    async def start_clients(self, stop: asyncio.Event, *clients) -> bool:
        """Start the Kafka clients, backing off while the broker is away; False when `stop` came first. A
        failure that is no outage (the broker refused the credentials or an ACL) stops them all and propagates."""
        try:
            async for attempt in self.retry("kafka", stop):
                with attempt:
                    for client in clients:
                        await client.start()
        except Stopping:
            log.info("stopped before the broker could be reached")
            return False
        except BaseException:
            for client in clients:
                await client.stop()
            raise
        return True


@contextlib.asynccontextmanager
async def _health(pool, broker_probe, progress: Progress, stop: asyncio.Event):
    async def database_probe() -> str:
        async with pool.acquire() as conn:
            return await writable_server(conn)  # a demoted or fenced primary is not ready (issue 24)

    task = asyncio.create_task(watch_health(database_probe, broker_probe, progress, stop), name="health")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def _retention(settings: Settings, pool, stop: asyncio.Event):
    """ORDERSTATUS_RETENTION_DAYS: the background prune beside the worker (off when unset)."""
    if settings.retention_days is None:
        yield
        return
    task = asyncio.create_task(retention_job(settings, pool).run(stop), name="retention")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None, ready: asyncio.Event | None = None) -> int:
    """Run the command worker until `stop`; `ready` is set once it is wired. Returns the exit code."""
    stop = stop or asyncio.Event()
    process = _Process("worker", settings)
    pool = await process.open_pool(settings, stop)
    if pool is None:
        return 0
    producer = make_producer(settings)
    try:
        started = await process.start_clients(stop, producer)
    except BaseException:
        await pool.close()
        raise
    if not started:
        await producer.stop()
        await pool.close()
        return 0
    verifier = token_verifier(settings)
    consumer = KafkaConsumer(make_consumer(settings, settings.worker_group))
    worker = CommandWorker(worker_config(settings, ActorCheck(settings.actor_auth, verifier)), pool, producer,
                           consumer, process.metrics, process.progress, process.retry,
                           KafkaPublishedEvents(settings, settings.events_topic))
    read_views = PostgresReadViews(pool)  # the read API's routes share its one rules cache
    read_api = read_routes(read_views, None if verifier is None else partial(bearer, verifier=verifier),
                           token_required=settings.actor_auth == "required", open_reads=settings.read_api_open)
    # DESIGN §11: the read API on its own port when asked, else beside the probes
    http = await start_http(settings.http_host, settings.http_port, process.progress, process.metrics,
                            read_api if settings.read_api_port is None else (), status=worker.status)
    servers = [http]
    if settings.read_api_port is not None:
        servers.append(await serve(web.Application(), settings.http_host, settings.read_api_port, read_api))
    log.info("worker started", http_port=bound_port(http), read_api_port=bound_port(servers[-1]),
             commands_topic=settings.commands_topic, group=settings.worker_group, actor_auth=settings.actor_auth)
    try:
        async with _health(pool, producer.client.fetch_all_metadata, process.progress, stop), \
                _retention(settings, pool, stop), \
                heartbeating(pool, "worker", progress_report(process.progress, partial(assigned, consumer))):
            if ready is not None:
                ready.set()
            await worker.run(stop)
    finally:
        stop.set()
        for server in servers:
            await server.cleanup()
        await producer.stop()
        await pool.close()
        log.info("worker stopped")
    return 0


async def run_notifier(settings: Settings, stop: asyncio.Event | None = None,
                       ready: asyncio.Event | None = None) -> int:
    """Run the notifier until `stop`; `ready` is set once its consumer has started. Returns the exit code."""
    stop = stop or asyncio.Event()
    process = _Process("notifier", settings)
    pool = await process.open_pool(settings, stop)
    if pool is None:
        return 0
    # small fetches per partition, so a notifier that is behind serves every partition in turn
    fetch_bytes = partition_fetch_bytes(settings.kafka_max_partition_fetch_bytes)
    consumer = make_consumer(settings, settings.notifier_group, max_partition_fetch_bytes=fetch_bytes)
    notifier = Notifier(notifier_config(settings), pool, PostgresNotificationStore(pool), KafkaConsumer(consumer),
                        Mailer(settings), process.metrics, process.progress, process.retry)
    http = await start_http(settings.http_host, settings.notifier_http_port, process.progress, process.metrics,
                            status=notifier.status)
    log.info("notifier started", http_port=bound_port(http), events_topic=settings.events_topic,
             group=settings.notifier_group, smtp=f"{settings.smtp_host}:{settings.smtp_port}")
    try:
        # the consumer's own connection is the one readiness must judge; topics() asks the broker for metadata
        async with _health(pool, consumer.topics, process.progress, stop), \
                heartbeating(pool, "notifier", progress_report(process.progress, partial(assigned, consumer))):
            await notifier.run(stop, ready)
    finally:
        stop.set()
        await http.cleanup()
        await pool.close()
        log.info("notifier stopped")
    return 0


async def run_gateway(settings: Settings, stop: asyncio.Event | None = None,
                      ready: asyncio.Event | None = None) -> int:
    """Run the gateway until `stop`: every request needs a valid bearer token, so keys are required."""
    stop = stop or asyncio.Event()
    process = _Process("gateway", settings)
    verifier = TokenVerifier.from_files(settings.auth_jwks_file, settings.auth_public_keys, settings.auth_issuer,
                                        settings.auth_audience, settings.auth_leeway_s)
    signer = CommandSigner.from_file(settings.gateway_signing_key_file or settings.auth_private_key_file,
                                     settings.auth_issuer, settings.auth_audience, settings.gateway_command_token_ttl_s)
    pool = await process.open_pool(settings, stop)
    if pool is None:
        return 0
    producer = RenewingProducer(partial(make_producer, settings))  # a revoked Write ACL is answered 503, not for good
    tail = EventsTail(settings)
    try:
        started = await process.start_clients(stop, producer, tail)
    except BaseException:
        await pool.close()
        raise
    if not started:
        await tail.stop()
        await producer.stop()
        await pool.close()
        return 0
    gateway = Gateway(records=PostgresCommandRecords(pool, max_events=settings.max_batch_items + 2),
                      read_views=PostgresReadViews(pool), producer=producer, tail=tail,
                      authenticate=partial(bearer, verifier=verifier),
                      commands_topic=settings.commands_topic, wait_s=settings.gateway_wait_s,
                      limits=InputLimits(settings.max_message_bytes, settings.max_wire_items),
                      issuer=settings.auth_issuer, sign_command=signer)
    gateway.in_flight = InFlight(settings.gateway_max_in_flight, settings.gateway_max_in_flight_per_principal)
    gateway.body_timeout_s = settings.gateway_body_timeout_s
    app = web.Application(client_max_size=settings.max_message_bytes)
    if settings.gateway_ops_port is None:  # probes, /metrics and /status beside the seed APIs (dev, tests)
        http = await start_http(settings.http_host, settings.gateway_port, process.progress, process.metrics,
                                gateway.routes(), app=app)
        ops = None
    else:  # issue 23: /metrics and /status on a port the public Service does not expose
        app.middlewares.append(request_metrics(process.metrics))
        http = await serve(app, settings.http_host, settings.gateway_port, gateway.routes())
        ops = await start_http(settings.http_host, settings.gateway_ops_port, process.progress, process.metrics)
    log.info("gateway started", port=bound_port(http), wait_s=settings.gateway_wait_s,
             ops_port=None if ops is None else bound_port(ops))
    try:
        async with _health(pool, producer.fetch_all_metadata, process.progress, stop), \
                heartbeating(pool, "gateway", progress_report(process.progress)):
            process.progress.polled()
            if ready is not None:
                ready.set()
            while not stop.is_set():  # requests are served by the HTTP server; readiness needs no consumer
                process.progress.polled()
                if tail.stopped is not None:  # no outcome would ever be read again: red, so traffic moves on
                    process.progress.paused_reason = tail.stopped
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
    finally:
        stop.set()
        await http.cleanup()
        if ops is not None:
            await ops.cleanup()
        await tail.stop()
        try:  # a send the broker has not taken was answered 503 already: an outage (an idempotent producer retries
            # for ever) must not hold the stop until the broker is back
            await asyncio.wait_for(producer.stop(), settings.gateway_wait_s)
        except asyncio.TimeoutError:
            log.warning("producer stopped without its unsent commands (their callers were answered 503)",
                        waited_s=settings.gateway_wait_s)
        await pool.close()
        log.info("gateway stopped")
    return 0
