"""Health, readiness and metrics over HTTP (aiohttp), shared by every process; the health probe loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.runtime.metrics import Metrics


class Progress:
    """What readiness watches: dependencies reachable and the consumer actually moving.

    A consumer that stalls silently after a broker restart (aiokafka #1154, #1037) keeps the
    process alive but stops polling; `stalled()` catches it by the age of the last poll.
    """

    def __init__(self, stall_after: float) -> None:
        self.stall_after = stall_after
        self.last_poll = time.monotonic()
        self.last_commit: float | None = None
        self.database_ok = False
        self.database_server: str | None = None  # host:port of the database in use (of several: the writable one)
        self.kafka_ok = False
        self.paused_reason: str | None = None

    def polled(self) -> None:
        # not proof the broker is up: getmany also returns (empty) while it is unreachable;
        # kafka_ok is the health probe's call
        self.last_poll = time.monotonic()

    def committed(self) -> None:
        self.last_commit = time.monotonic()

    def stalled(self) -> bool:
        return time.monotonic() - self.last_poll > self.stall_after

    def ready(self) -> tuple[bool, dict]:
        detail = {
            "database": self.database_ok,
            "database_server": self.database_server,
            "kafka": self.kafka_ok,
            "seconds_since_poll": round(time.monotonic() - self.last_poll, 3),
            "seconds_since_commit": None if self.last_commit is None else round(time.monotonic() - self.last_commit, 3),
            "paused": self.paused_reason,
        }
        return (self.database_ok and self.kafka_ok and not self.stalled() and self.paused_reason is None), detail


Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]


async def start_http(host: str, port: int, progress: Progress, metrics: Metrics, routes: list[Route] = (),
                     status: Callable[[], Awaitable[dict]] | None = None,
                     app: web.Application | None = None) -> web.AppRunner:
    """Serve /healthz, /readyz, /metrics, /status and any extra routes; returns the runner (call .cleanup()).

    /readyz is about this process's ability to work; /status (JSON) shows what an operator looks at:
    pauses, and whatever `status` adds (the worker's outbox and parked rows, each process's lag)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok, detail = progress.ready()
        return web.json_response({"ready": ok, **detail}, status=200 if ok else 503)

    async def metrics_view(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status_view(_: web.Request) -> web.Response:
        ok, detail = progress.ready()
        body = {"service": metrics.service, "ready": ok, "paused": detail["paused"],
                "database_server": detail["database_server"],
                "seconds_since_poll": detail["seconds_since_poll"], "seconds_since_commit": detail["seconds_since_commit"]}
        if status is not None:
            body.update(await status())
        return web.json_response(body)

    # orderstatus_ready: what /readyz would answer, evaluated at every scrape
    metrics.ready.labels(metrics.service).set_function(lambda: 1.0 if progress.ready()[0] else 0.0)
    app = app or web.Application()
    app.middlewares.append(request_metrics(metrics))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status_view)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    return await serve(app, host, port, routes)


UNMATCHED_ROUTE = "(unmatched)"  # requests no route answers: one label value, whatever path was asked


def route_of(request: web.Request) -> str:
    """The route template a request matched (`/orders/{order_id}/history`), never the raw path."""
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None) if route is not None else None
    if resource is None or getattr(info, "http_exception", None) is not None:
        return UNMATCHED_ROUTE
    return resource.canonical


PRINCIPAL_KEY = web.RequestKey("orderstatus.principal", str)
AUTH_FAILURE_KEY = web.RequestKey("orderstatus.auth_failure", str)
AUTH_FAILURE_REASONS = ("missing", "malformed", "expired", "bad_signature", "rejected")


def note_principal(request: web.Request, subject: str) -> None:
    """Who the request's verified token named (the access log's `principal`; never the token)."""
    request[PRINCIPAL_KEY] = subject


def note_auth_failure(request: web.Request, message: str) -> None:
    """Why the request's token was refused, as one of AUTH_FAILURE_REASONS (counted once, by the middleware)."""
    text = message.lower()
    if text.startswith("no "):
        reason = "missing"
    elif "expired" in text:
        reason = "expired"
    elif "signature" in text:
        reason = "bad_signature"
    elif "not a jwt" in text or "not a bearer" in text or "too large" in text or "cannot be read" in text:
        reason = "malformed"
    else:
        reason = "rejected"
    request[AUTH_FAILURE_KEY] = reason


def request_metrics(metrics: Metrics):
    """aiohttp middleware: count every request by method, route and status code, and time it; count refused
    tokens by reason; one access log line per request (method, route, status, principal, duration — the route
    template, never the raw path or any header, so no token is ever logged)."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = route_of(request)
            method = request.method if request.method in _METHODS else "OTHER"
            seconds = time.perf_counter() - started
            metrics.http_requests.labels(metrics.service, method, route, str(status)).inc()
            metrics.http_seconds.labels(metrics.service, method, route).observe(seconds)
            failure = request.get(AUTH_FAILURE_KEY)
            if failure is not None:
                metrics.auth_failures.labels(metrics.service, failure).inc()
            if route not in _QUIET_ROUTES:
                access_log.info("http request", method=method, route=route, status=status,
                                principal=request.get(PRINCIPAL_KEY), auth_failure=failure,
                                duration_ms=round(seconds * 1000, 1))

    return middleware


access_log = structlog.get_logger("orderstatus.access")
_QUIET_ROUTES = frozenset({"/healthz", "/readyz"})  # probes every few seconds would drown the log


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


async def serve(app: web.Application, host: str, port: int, routes: list[Route] = ()) -> web.AppRunner:
    """Serve `app` (a new one by default) with the extra routes; returns the runner (call .cleanup())."""
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (settings may ask for 0 = any free port)."""
    for address in runner.addresses:
        return address[1]
    raise RuntimeError("HTTP server is not listening")


async def watch_health(database_probe, broker_probe, progress: Progress, stop: asyncio.Event,
                       every: float = 2.0) -> None:
    """Probe Postgres and the broker so /readyz says false while either is unreachable. A database probe that
    returns a string names the server in use (`host:port`): readiness and /status show it (issue 24: of a
    multi-host URL, the one that accepts writes); a failing probe keeps the last one named."""
    while not stop.is_set():
        answer: list = []
        progress.database_ok = await _answers(database_probe, every, answer)
        if answer and isinstance(answer[0], str):
            progress.database_server = answer[0]
        progress.kafka_ok = await _answers(broker_probe, every)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except asyncio.TimeoutError:
            pass


async def _answers(probe, timeout: float, answer: list | None = None) -> bool:
    try:
        async with asyncio.timeout(timeout):
            value = await probe()
        if answer is not None:
            answer.append(value)
        return True
    except Exception:
        return False
