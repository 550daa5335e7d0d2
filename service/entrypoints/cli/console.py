"""`orderstatus console` (issue 21, DESIGN §12): the operator web console, and `orderstatus console link`, a
one-time sign-in link made from a signed actor token.

This module is the console's wiring: it opens the pool, the token verifier and a producer, and hands the
console (`service/console/app.py`) the use cases it may call — the same functions the CLI calls:
`outbox retry` (adapters' `unpark`), `dlq redrive` (`ops.dlq.redrive` over the DLQ topic), `notifications
resend` (`notifier.resend.resend`), `lag` (`ops.lag.lag`) and `rules graph --format svg` (`queries.graph`).
The console itself never imports those packages."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from functools import partial

import click
import structlog

from service.adapters.errors import AccessRefused
from service.adapters.kafka.clients import make_consumer, make_producer
from service.adapters.kafka.consumer import KafkaConsumer
from service.adapters.kafka.records import topic_records
from service.adapters.kafka.renewing import RenewingProducer
from service.adapters.postgres import dead_letter_index as index
from service.adapters.postgres import heartbeats
from service.adapters.postgres.activity import RecentActivity
from service.adapters.postgres.connection import create_pool
from service.adapters.postgres.notifications import PostgresNotificationStore
from service.adapters.postgres.outbox_ops import unpark
from service.adapters.postgres.views import PostgresReadViews
from service.adapters.smtp import Mailer
from service.contract.redrive import why_unredrivable
from service.console import store as console_store
from service.console.app import Console, ConsolePorts
from service.console.dead_letter_indexer import DeadLetterIndexer, first_stored_offsets
from service.entrypoints.cli.common import UserError, run
from service.notifier.resend import ResendError, parse_event_id, resend as resend_event
from service.ops import dlq as ops_dlq
from service.ops.errors import OpsError
from service.entrypoints.configs import consumer_lags as group_lags
from service.queries.graph.optional import svg_renderer
from service.runtime.auth import AuthConfigError, NotAuthenticated, TokenVerifier, bearer
from service.runtime.faults import dependency_of
from service.runtime.health import Progress, bound_port, serve, watch_health
from service.runtime.heartbeat import heartbeating, progress_report
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry
from service.runtime.settings import Settings
from service.runtime.signals import run_until_signalled

log = structlog.get_logger("orderstatus.console")
MAX_BYTES_SHOWN = 16_384  # of a letter's key, value and each header on its page
PURGE_EVERY_S = 60.0  # expired sessions and sign-in links are deleted at start-up and this often
PURGE_BATCH = 1000  # rows of each table one purge deletes at most (a backlog goes over several rounds)


def verifier_of(settings: Settings) -> TokenVerifier:
    return TokenVerifier.from_files(settings.auth_jwks_file, settings.auth_public_keys, settings.auth_issuer,
                                    settings.auth_audience, settings.auth_leeway_s)


def token_check(verifier: TokenVerifier):
    """A token -> (principal, expiry), exactly as a bearer token is checked on every face (a command's bound
    token is refused); NotAuthenticated otherwise."""

    def verify(token: str):
        principal = bearer(f"Bearer {token}", verifier)
        expires = datetime.fromtimestamp(int(verifier.claims(token)["exp"]), timezone.utc)
        return principal, expires

    return verify


def _filter(filters: dict) -> index.Filter:
    """The index filter of the console's query fields; ValueError with a readable sentence."""

    def moment(name: str) -> datetime | None:
        if not filters.get(name):
            return None
        try:
            value = datetime.fromisoformat(filters[name])
        except ValueError:
            raise ValueError(f"{name}: not an ISO-8601 date-time: {filters[name]!r}") from None
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    order_id = filters.get("order_id")
    if order_id and not (order_id.isascii() and order_id.isdigit() and len(order_id) < 19):
        raise ValueError(f"order id: not a number: {order_id!r}")
    return index.Filter(reason=filters.get("reason") or None, since=moment("since"), until=moment("until"),
                        command_id=filters.get("command_id") or None, order_id=int(order_id) if order_id else None)


class DeadLetters:
    """The Dead letters page's port: the index for lists and filters, the DLQ topic for a letter in full, and
    `ops.dlq.redrive` — the `orderstatus dlq redrive` use case — for a redrive (or its dry run, the preview)."""

    def __init__(self, settings: Settings, pool, producer) -> None:
        self.settings, self.pool, self.producer = settings, pool, producer
        self.topic = settings.dlq_topic

    async def page(self, filters: dict, cursor: str | None, limit: int) -> dict:
        where = _filter(filters)
        found = await index.page(self.pool, self.topic, where, limit, cursor or None)
        letters = [{**asdict(letter), "position": f"{letter.partition}:{letter.offset}"} for letter in found.letters]
        return {"letters": letters, "next": found.next_cursor, "total": await index.count(self.pool, self.topic, where)}

    async def matching(self, filters: dict, limit: int) -> list[tuple[int, int]]:
        return await index.positions(self.pool, self.topic, _filter(filters), limit)

    async def letter(self, partition: int, offset: int) -> dict | None:
        async with topic_records(self.settings, self.topic) as reader:
            if partition not in reader.partitions():
                return None
            record = await reader.get(partition, offset)
        if record is None:
            return None
        letter = ops_dlq.read_letter(record)
        indexed = await index.get(self.pool, self.topic, partition, offset)
        return {"position": f"{partition}:{offset}", "lines": ops_dlq.render(letter, MAX_BYTES_SHOWN),
                "unredrivable": letter.unredrivable(), "order_id": indexed.order_id if indexed else None}

    async def redrive(self, positions: list[tuple[int, int]], dry_run: bool) -> list[dict]:
        """Each position's result, in DLQ order: redriven (where to, its redrive.count) or skipped (why). The
        preview (`dry_run`) answers from the index, by the rule `dlq redrive` applies to the record
        (`why_unredrivable`): reading thousands of letters from the DLQ took minutes; the confirmation reads each."""
        if dry_run:
            return await self.preview(positions)
        results: list[dict] = []
        try:
            await self._redrive(positions, results)
        except Exception as exc:  # shown as a failed redrive and audited so (no 500), after what was sent before it
            why = str(exc)
            if isinstance(exc, AccessRefused):  # e.g. the console's Write ACL revoked
                log.error("dead letters not redriven: access refused", error=why)
            elif dependency_of(exc) is not None:  # the broker stopped or unreachable: reading the DLQ or sending
                why = f"Kafka unavailable ({type(exc).__name__}: {exc})"
                log.warning("dead letters not redriven: Kafka unavailable", error=why, sent_before=len(results))
            elif not isinstance(exc, OpsError):
                raise
            results.append({"position": "-", "outcome": "failed", "why": why, "target": None, "count": 0})
        return results

    async def _redrive(self, positions: list[tuple[int, int]], results: list[dict]) -> None:
        """The confirmation's work: each result appended as the DLQ is read and the broker acknowledges."""
        async with topic_records(self.settings, self.topic) as reader:
            known = set(reader.partitions())
            present = []
            for partition, offset in positions:
                if partition not in known or await reader.get(partition, offset) is None:
                    results.append({"position": f"{partition}:{offset}", "outcome": "skipped",
                                    "why": "no such dead letter (deleted by retention?)", "target": None, "count": 0})
                else:
                    present.append((partition, offset))
            if present:
                selection = ops_dlq.Selection(positions=tuple(present))
                async for result in ops_dlq.redrive(reader, self.producer, selection):
                    position = result.letter.position
                    if isinstance(result, ops_dlq.Skipped):
                        results.append({"position": position, "outcome": "skipped", "why": result.why,
                                        "target": None, "count": 0})
                    else:
                        target = (result.topic if result.offset is None
                                  else f"{result.topic}:{result.partition}:{result.offset}")
                        results.append({"position": position, "outcome": "redriven", "why": None,
                                        "target": target, "count": result.count})

    async def preview(self, positions: list[tuple[int, int]]) -> list[dict]:
        found = await index.get_many(self.pool, self.topic, positions)
        results = []
        for partition, offset in sorted(positions):
            letter = found.get((partition, offset))
            why = ("no such dead letter (deleted by retention?)" if letter is None
                   else why_unredrivable(letter.original_topic, letter.truncated, letter.reason))
            results.append({"position": f"{partition}:{offset}", "outcome": "skipped" if why else "redriven",
                            "why": why, "target": None if why else letter.original_topic,
                            "count": 0 if why else letter.redrive_count + 1})
        return results


def _resender(settings: Settings, pool):
    async def resend(event_id: str) -> list[dict]:
        mailer = Mailer(settings)
        try:
            found = await resend_event(PostgresNotificationStore(pool), mailer, settings.mail_from,
                                       parse_event_id(event_id))
        except ResendError as exc:
            raise ValueError(str(exc)) from None
        finally:
            await mailer.close()
        return [{"recipient": r.recipient, "outcome": r.outcome, "attempt": r.attempt, "detail": r.detail}
                for r in found]

    return resend


def _health(settings: Settings, pool):
    recent = RecentActivity(settings.dlq_topic)  # the settled minutes' counts, kept between requests

    async def health() -> dict:
        rows = await heartbeats.processes(pool)
        processes = [{**asdict(p), "stale": p.status == "stale", "status": p.status,
                      "partitions_text": "; ".join(f"{t}: {', '.join(map(str, ps))}" for t, ps in p.partitions.items())
                      or "–"} for p in rows if p.status != "stopped"]
        try:
            lags = [asdict(x) for x in await asyncio.wait_for(group_lags(settings), 10)]
            lag_error = None
        except Exception as exc:  # the broker away: the page still shows what Postgres knows
            lags, lag_error = [], f"lag unavailable: {type(exc).__name__}: {exc}"
        activity = await recent.last_hour(pool)
        series = {"commands processed": _sum(activity.commands), "status changes": activity.changes,
                  "rejections": _sum(activity.rejections), "dead letters": _sum(activity.dead_letters),
                  "emails": _sum(activity.emails)}
        by_kind = {"commands processed": activity.commands, "rejections": activity.rejections,
                   "dead letters": activity.dead_letters, "emails": activity.emails}
        return {"processes": processes, "lag": lags, "lag_error": lag_error,
                "series": {name: list(zip(activity.minutes, values)) for name, values in series.items()},
                "breakdown": {name: {kind or "(none)": sum(values) for kind, values in counts.items() if sum(values)}
                              for name, counts in by_kind.items()}}

    return health


def _sum(counts: dict[str, list[int]]) -> list[int]:
    lists = list(counts.values())
    return [sum(column) for column in zip(*lists)] if lists else []


def indexer_group(settings: Settings) -> str:
    """The consumer group of the console's dead-letter indexer (one per deployment: replicas share the work)."""
    return f"{settings.worker_group}-console-dlq-index"


async def run_console(settings: Settings, stop: asyncio.Event | None = None,
                      ready: asyncio.Event | None = None) -> int:
    """Run the console until `stop`: the web app, the dead-letter indexer and the heartbeat; `ready` is set once
    it serves. Every page needs a signed-in user, so verification keys are required."""
    stop = stop or asyncio.Event()
    verifier = verifier_of(settings)
    metrics = Metrics("console")
    progress = Progress(settings.ready_stall_seconds)
    retry = OutageRetry(settings.retry_initial_s, settings.retry_max_s, metrics, progress)
    pool = await create_pool(settings.database_url.get_secret_value(), size=settings.database_pool_size,
                             statement_timeout_s=settings.db_statement_timeout_s,
                             lock_timeout_s=settings.db_lock_timeout_s)
    producer = RenewingProducer(partial(make_producer, settings))  # a redrive after a revoked Write ACL is back works
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        await pool.close()
        raise
    indexer = DeadLetterIndexer(pool, KafkaConsumer(make_consumer(settings, indexer_group(settings))),
                                settings.dlq_topic, retry, progress, metrics,
                                first_offsets=partial(first_stored_offsets, settings, settings.dlq_topic))
    ports = ConsolePorts(
        pool=pool, verify_token=token_check(verifier), diagram=svg_renderer(), retry_outbox=unpark,
        resend=_resender(settings, pool), read_views=PostgresReadViews(pool),
        dead_letters=DeadLetters(settings, pool, producer),
        health=_health(settings, pool), read_only=settings.console_read_only, ready=progress.ready,
        max_events=settings.max_batch_items + 2, metrics=metrics,
        secure_cookie=settings.console_secure_cookie == "true")
    # orderstatus_ready: what /readyz would answer, evaluated at every scrape (as runtime.health.start_http does)
    metrics.ready.labels(metrics.service).set_function(lambda: 1.0 if progress.ready()[0] else 0.0)
    app = Console(ports)
    runner = await serve(app.app(ops=settings.console_ops_port is None), settings.http_host, settings.console_port)
    ops = (None if settings.console_ops_port is None
           else await serve(app.ops_app(), settings.http_host, settings.console_ops_port))
    log.info("console started", port=bound_port(runner), ops_port=None if ops is None else bound_port(ops),
             read_only=settings.console_read_only, secure_cookie=settings.console_secure_cookie,
             dlq_index_group=indexer_group(settings))
    indexing = asyncio.create_task(indexer.run(stop), name="dead-letter-indexer")

    async def database_probe() -> None:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    probing = asyncio.create_task(watch_health(database_probe, producer.fetch_all_metadata, progress, stop),
                                  name="health")
    try:
        async with heartbeating(pool, "console", progress_report(progress, indexer.owned)):
            if ready is not None:
                ready.set()
            purged_at = None
            while not stop.is_set() and not indexing.done():
                if purged_at is None or time.monotonic() - purged_at >= PURGE_EVERY_S:
                    purged_at = time.monotonic()
                    await _purge(pool)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            if indexing.done() and not stop.is_set():
                indexing.result()  # the indexer stopped on its own: its error ends the process
    finally:
        stop.set()
        probing.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(indexing, 30)
        await asyncio.gather(probing, return_exceptions=True)
        await runner.cleanup()
        if ops is not None:
            await ops.cleanup()
        await producer.stop()
        await pool.close()
        log.info("console stopped")
    return 0


async def _purge(pool) -> None:
    """Delete expired sessions and sign-in links, a bounded batch of each; a failure waits for the next round
    (a session past its expiry is refused anyway: the purge only keeps the tables small)."""
    try:
        gone = await console_store.purge_expired(pool, PURGE_BATCH)
    except Exception as exc:  # the database away: the health watch reports it, the next round tries again
        log.warning("console purge failed", error=f"{type(exc).__name__}: {exc}")
        return
    if gone:
        log.info("console purged expired sessions and sign-in links", rows=gone)


async def make_link(settings: Settings, token: str) -> str:
    """A one-time sign-in code for the principal of `token` (checked as the console checks it); the token is not kept."""
    principal, expires = token_check(verifier_of(settings))(token)
    pool = await create_pool(settings.database_url.get_secret_value(), size=1)
    try:
        return await console_store.create_link(pool, principal, expires)
    finally:
        await pool.close()


def link_url(settings: Settings, code: str, base: str | None = None) -> str:
    return f"{base or f'http://127.0.0.1:{settings.console_port}'}/sign-in/link?code={code}"


@click.group(invoke_without_command=True)
@click.pass_context
def console(ctx: click.Context) -> None:
    """Run the operator web console (ORDERSTATUS_CONSOLE_PORT, 8083) until SIGTERM/SIGINT."""
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj
    try:
        sys.exit(run_until_signalled(run_console, settings))
    except AuthConfigError as exc:  # every page needs a signed-in user: no keys, no console
        raise UserError(f"the console cannot start: {exc}") from None


@console.command("link")
@click.option("--token", "token", default=None, help="The actor token (default: read from stdin).")
@click.option("--base-url", default=None, help="The console's address as the browser reaches it.")
@click.pass_obj
def console_link(settings: Settings, token: str | None, base_url: str | None) -> None:
    """Print a one-time sign-in link (valid 10 minutes, once) for the principal of an actor token."""
    token = (token if token is not None else sys.stdin.read()).strip()
    try:
        code = run(make_link(settings, token))
    except AuthConfigError as exc:
        raise UserError(f"cannot check the token: {exc}") from None
    except NotAuthenticated as exc:
        raise UserError(f"the token is refused: {exc}") from None
    click.echo(link_url(settings, code, base_url))


COMMANDS = [console]
