"""The operator console (issue 21): server-rendered pages over aiohttp and Jinja2, sign-in, and audited actions.

The console never imports the worker, notifier, queries or ops packages: what it needs of them — the state
diagram, a dead-letter redrive, an email resend, lag — arrives as callables in `ConsolePorts`, wired by
`service/entrypoints/cli/console.py` to the very functions the CLI calls. It reads an order's history and
transitions through the same read-views port as the read API (`service.domain.read_views.ReadViews`, in
`ConsolePorts.read_views`).

Every request but the sign-in pages and the assets needs a session (`policy`); every action is a POST that
carries the page's CSRF token, is checked against the role and the read-only switch on the server, runs as
preview → confirmation → result, and is recorded in `console_audit` (who, when, what, how many, result)."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.adapters.postgres import orders as orders_store
from service.adapters.postgres.outbox_ops import parked as parked_rows, stats as outbox_stats
from service.console import policy, store
from service.domain.access import viewer_of
from service.domain.model import ROLES, Actor, Principal
from service.domain.read_views import ReadViews
from service.runtime.auth import NotAuthenticated
from service.runtime.health import request_metrics

log = structlog.get_logger("orderstatus.console")
HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TIMELINE_MAX = 200  # the newest changes an Order page shows (an order's history can be long; the CLI has all)
MAX_SELECTED = 10_000  # dead letters one redrive may name (a filter beyond it is refused: narrow it)


@dataclass
class ConsolePorts:
    """What the entrypoint hands the console: the pool, token verification and the use cases it may call."""

    pool: Any
    # a token -> (its principal, its expiry); NotAuthenticated when it is no good (the bearer check of every face)
    verify_token: Callable[[str], tuple[Principal, datetime]]
    # rules, order type -> the state diagram as SVG (the `orderstatus rules graph --format svg` generator);
    # None when this install has no `diagrams` extra: the pages show the tables and say so
    diagram: Callable[[Any, str | None], str] | None
    # (conn, ids) -> ids released: `orderstatus outbox retry`
    retry_outbox: Callable[[Any, list[int]], Awaitable[list[int]]]
    # event id text -> [{recipient, outcome, attempt, detail}]: `orderstatus notifications resend`
    resend: Callable[[str], Awaitable[list[dict]]]
    # an order's history and transitions, as the read API reads them (with the console's one rules cache)
    read_views: ReadViews
    # the dead letters: page, one letter, redrive (`orderstatus dlq redrive`); None: not wired
    dead_letters: Any = None
    # the Health page's data: {processes, lag, outbox, series}; None: not wired
    health: Callable[[], Awaitable[dict]] | None = None
    read_only: bool = False
    # readiness as the other processes report it: (ready, detail) for /readyz and /status; None: always ready
    ready: Callable[[], tuple[bool, dict]] | None = None
    # events one command may have (the worker's max_batch_items + 2): how a command id is searched by its event ids
    max_events: int = 52
    # the process's metrics (service/runtime/metrics.py): requests counted and timed, /metrics; None: neither
    metrics: Any = None
    # the session cookie is Secure always (ORDERSTATUS_CONSOLE_SECURE_COOKIE=true), not only over HTTPS
    secure_cookie: bool = False


class Forbidden(Exception):
    """An action refused (role, read-only, CSRF); answered with 403 and the reason."""


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=jinja2.select_autoescape(default=True),
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["age"] = _age
    return env


def _when(value) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


SECURITY_HEADERS = {
    # every asset is the console's own; scripts are its files alone (the vendored htmx): no inline script, no
    # eval; no frames; a referrer (a sign-in code in a URL) never leaves the console, while its own forms keep an
    # Origin to check (no-referrer would send `Origin: null`)
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; img-src 'self' data:; "
                               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
PRINCIPAL = web.RequestKey("principal", object)  # the signed-in Principal (None on the public pages)
SESSION = web.RequestKey("session_id", object)  # the session id of the cookie (str), for the CSRF token
PUBLIC = ("/sign-in", "/static/", "/healthz", "/readyz", "/status", "/metrics")
OPS_PATHS = ("/healthz", "/readyz", "/status", "/metrics")  # on the ops port alone when there is one


class Console:
    def __init__(self, ports: ConsolePorts) -> None:
        self.ports = ports
        self.pool = ports.pool
        self.env = _env()

    # ---- plumbing ----

    def app(self, ops: bool = True) -> web.Application:
        """The console's pages; with `ops` also the probes, /status and /metrics (False: they are on `ops_app`)."""
        counting = [request_metrics(self.ports.metrics)] if self.ports.metrics is not None else []
        app = web.Application(middlewares=[*counting, self._middleware], client_max_size=1_048_576)
        for method, path, handler in self.routes():
            if ops or path not in OPS_PATHS:
                app.router.add_route(method, path, handler)
        return app

    def ops_app(self) -> web.Application:
        """/healthz, /readyz, /status and /metrics alone, for ORDERSTATUS_CONSOLE_OPS_PORT (never the ingress)."""
        counting = [request_metrics(self.ports.metrics)] if self.ports.metrics is not None else []
        app = web.Application(middlewares=counting)
        for method, path, handler in self.routes():
            if path in OPS_PATHS:
                app.router.add_route(method, path, handler)
        return app

    def routes(self) -> list[tuple[str, str, Callable]]:
        return [
            ("GET", "/", self.home),
            ("GET", "/healthz", self.healthz),
            ("GET", "/readyz", self.readyz),
            ("GET", "/status", self.status),
            ("GET", "/metrics", self.metrics),
            ("GET", "/static/{name:.+}", self.static),
            ("GET", "/sign-in", self.sign_in_page),
            ("POST", "/sign-in", self.sign_in),
            ("GET", "/sign-in/link", self.link_page),
            ("POST", "/sign-in/link", self.link_sign_in),
            ("POST", "/sign-out", self.sign_out),
            ("GET", "/orders", self.orders),
            ("GET", "/orders/{order_id}", self.order),
            ("GET", "/rules", self.rules),
            ("GET", "/outbox", self.outbox),
            ("POST", "/outbox/retry", self.outbox_retry),
            ("GET", "/dead-letters", self.dead_letters),
            ("GET", "/dead-letters/{partition}/{offset}", self.dead_letter),
            ("POST", "/dead-letters/redrive", self.redrive),
            ("GET", "/health", self.health),
            ("GET", "/health/panels", self.health_panels),
            ("POST", "/emails/resend", self.resend),
            ("GET", "/audit", self.audit),
        ]

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        started = time.perf_counter()
        try:
            response = await self._guarded(request, handler)
        except web.HTTPException as exc:  # a redirect or a 404 is a response too
            _headers(exc, started)
            raise
        _headers(response, started)
        return response

    async def _guarded(self, request: web.Request, handler):
        request[PRINCIPAL] = request[SESSION] = None
        if not request.path.startswith(PUBLIC):
            session_id = request.cookies.get(policy.COOKIE)
            found = await store.session(self.pool, session_id) if session_id else None
            if found is None or not policy.may_enter(found.principal.role):
                if request.headers.get("HX-Request") == "true":
                    return _signed_out_refresh(request)
                if request.method == "GET":
                    raise web.HTTPSeeOther("/sign-in?" + urlencode({"next": request.path_qs}))
                return self._refusal(request, 401, "sign in first")
            request[PRINCIPAL], request[SESSION] = found.principal, session_id
        try:
            response = await handler(request)
        except Forbidden as exc:
            response = self._refusal(request, 403, str(exc))
        return response

    def _refusal(self, request: web.Request, status: int, why: str) -> web.Response:
        log.info("console request refused", status=status, path=request.path, why=why,
                 sub=getattr(request.get(PRINCIPAL), "sub", None))
        return self.page(request, "refused.html", {"why": why, "status": status}, status=status)

    def page(self, request: web.Request, template: str, context: dict, status: int = 200) -> web.Response:
        principal: Principal | None = request.get(PRINCIPAL)
        session_id = request.get(SESSION)
        base = {
            "principal": principal,
            "csrf": policy.csrf_token(session_id) if session_id else "",
            "can_act": principal is not None and policy.may_act(principal.role, self.ports.read_only),
            "read_only": self.ports.read_only,
            "current_path": request.path,
        }
        text = self.env.get_template(template).render(**base, **context)
        return web.Response(text=text, content_type="text/html", charset="utf-8", status=status)

    async def _action_form(self, request: web.Request) -> tuple[Principal, Any]:
        """The form of an action, once its CSRF token, the role and the read-only switch said yes."""
        form = await request.post()
        principal = request[PRINCIPAL]
        if not policy.csrf_ok(request[SESSION], form.get("csrf")):
            raise Forbidden("the form's CSRF token is missing or wrong: reload the page and try again")
        why = policy.why_not_act(principal.role, self.ports.read_only)
        if why:
            raise Forbidden(why)
        return principal, form

    # ---- sign-in ----

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, request: web.Request) -> web.Response:
        ready, detail = self.ports.ready() if self.ports.ready is not None else (True, {})
        return web.json_response({"ready": ready, **detail}, status=200 if ready else 503)

    async def status(self, request: web.Request) -> web.Response:
        """The probes' detail (no order data): the dev stack and monitors ask it as they ask the other processes."""
        ready, detail = self.ports.ready() if self.ports.ready is not None else (True, {})
        return web.json_response({"ready": ready, "read_only": self.ports.read_only, **detail}, dumps=_dumps)

    async def metrics(self, request: web.Request) -> web.Response:
        if self.ports.metrics is None:
            raise web.HTTPNotFound()
        return web.Response(body=generate_latest(self.ports.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = (STATIC / name).resolve()
        if any(part.startswith(".") for part in name.split("/")) or not path.is_relative_to(STATIC) \
                or not path.is_file():
            raise web.HTTPNotFound()
        response = web.FileResponse(path)
        # a vendored file's name carries its version (static/vendor/VENDORED): a browser may keep it for good
        response.headers["Cache-Control"] = ("max-age=31536000, immutable" if name.startswith("vendor/")
                                             else "max-age=3600")
        return response

    async def home(self, request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/orders")

    async def sign_in_page(self, request: web.Request) -> web.Response:
        return self.page(request, "sign_in.html", {"error": None, "next": _safe_next(request.query.get("next"))})

    async def sign_in(self, request: web.Request) -> web.Response:
        form = await request.post()
        if not _same_origin(request):
            return self._refusal(request, 403, "a sign-in must come from the console's own page")
        try:
            principal, expires = self.ports.verify_token(str(form.get("token") or "").strip())
        except NotAuthenticated as exc:
            return self.page(request, "sign_in.html", {"error": str(exc), "next": _safe_next(form.get("next"))},
                             status=401)
        return await self._start_session(request, principal, expires, _safe_next(form.get("next")))

    async def link_page(self, request: web.Request) -> web.Response:
        """A one-time link shows a button that spends it (a link preview or prefetch must not)."""
        return self.page(request, "sign_in_link.html", {"code": request.query.get("code", "")})

    async def link_sign_in(self, request: web.Request) -> web.Response:
        form = await request.post()
        if not _same_origin(request):
            return self._refusal(request, 403, "a sign-in must come from the console's own page")
        found = await store.use_link(self.pool, str(form.get("code") or ""))
        if found is None:
            return self.page(request, "sign_in.html", {
                "error": "this sign-in link is unknown, used already or expired: ask for a new one", "next": "/"},
                status=401)
        return await self._start_session(request, found.principal, found.expires_at, "/orders")

    async def _start_session(self, request: web.Request, principal: Principal, expires: datetime,
                             next_path: str) -> web.Response:
        if not policy.may_enter(principal.role):
            return self._refusal(request, 403, f"the role {principal.role!r} has no access to the console")
        session_id = await store.create_session(self.pool, principal, expires)
        log.info("console sign-in", sub=principal.sub, role=principal.role)
        response = web.HTTPSeeOther(next_path)
        max_age = int((expires - datetime.now(timezone.utc)).total_seconds())
        # Secure over HTTPS, or always when configured (behind a TLS-terminating ingress; X-Forwarded-Proto unread)
        secure = request.secure or self.ports.secure_cookie
        response.set_cookie(policy.COOKIE, session_id, **policy.cookie_options(secure, max_age))
        raise response

    async def sign_out(self, request: web.Request) -> web.Response:
        form = await request.post()
        if not policy.csrf_ok(request[SESSION], form.get("csrf")):
            raise Forbidden("the form's CSRF token is missing or wrong")
        await store.end_session(self.pool, request[SESSION])
        response = web.HTTPSeeOther("/sign-in")
        response.del_cookie(policy.COOKIE, path="/")
        raise response

    # ---- orders ----

    async def orders(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "").strip()[:300]
        found = await store.find_orders(self.pool, query, max_events=self.ports.max_events) if query else []
        if len(found) == 1:
            raise web.HTTPSeeOther(f"/orders/{found[0]}")
        return self.page(request, "orders.html", {"q": query, "found": found})

    async def order(self, request: web.Request) -> web.Response:
        text = request.match_info["order_id"]
        order_id = int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None
        principal: Principal = request[PRINCIPAL]
        role = request.query.get("role") if request.query.get("role") in ROLES else "staff"
        async with self.pool.acquire() as conn:  # given back before the views take a connection of their own
            order = await orders_store.read_order(conn, order_id) if order_id else None
        rules = await self.ports.read_views.rules() if order else None  # the console's one rules cache
        found = (await self.ports.read_views.history(order_id, viewer_of(principal), limit=TIMELINE_MAX,
                                                     after_version=max(order.version - TIMELINE_MAX, 0))
                 if order else None)
        if order is None or found is None:
            return self.page(request, "orders.html", {"q": text, "found": [], "missing": True}, status=404)
        actor = Actor(id=f"console:{principal.sub}", role=role, client_id=order.client_id if role == "client" else None)
        allowed = await self.ports.read_views.transitions(order_id, actor)
        timeline = list(reversed(found["history"]))
        event_ids = [entry["event_id"] for entry in timeline]
        mails = await store.emails(self.pool, event_ids)
        traces = await store.trace_ids(self.pool, event_ids)
        for entry in timeline:
            entry["emails"] = mails.get(entry["event_id"], [])
            entry["trace_id"] = traces.get(entry["event_id"])
        path = [h["from_status"].get("id") for h in found["history"][:1]] + [h["to_status"].get("id")
                                                                               for h in found["history"]]
        diagram = self.diagram(rules, order.order_type) if rules else ""
        return self.page(request, "order.html", {
            "order": order, "status": found["status"], "timeline": timeline, "timeline_max": TIMELINE_MAX,
            "contacts": await store.contacts(self.pool, order_id),
            "rejections": await store.rejections(self.pool, order_id), "allowed": allowed, "role": role,
            "roles": ROLES, "diagram": diagram, "visited": [p for p in path if p is not None],
            "current_id": order.status_id,
        })

    # ---- rules ----

    def diagram(self, rules, order_type: str) -> str | None:
        """The order type's SVG; None when the `diagrams` extra is missing (the template says how to get it)."""
        return None if self.ports.diagram is None else self.ports.diagram(rules, order_type)

    async def rules(self, request: web.Request) -> web.Response:
        # the cache reads the version first and reloads when it moved, so after a `rules load` both the rules and
        # the version line below are the new ones
        rules = await self.ports.read_views.rules()
        meta = await store.rules_meta(self.pool)
        types = []
        if rules is not None:
            for order_type in sorted(rules.order_types):
                statuses = [s for s in rules.statuses if order_type in s.order_types]
                names = {s.id: s for s in rules.statuses}
                edges = [(names.get(t.from_id), names.get(t.to_id), sorted(t.roles, key=_role_rank)) for t in rules.transitions
                         if t.order_type == order_type]
                types.append({"name": order_type, "statuses": statuses, "edges": edges,
                              "diagram": self.diagram(rules, order_type)})
        return self.page(request, "rules.html", {"meta": meta, "types": types,
                                                 "override_roles": sorted(rules.override_roles) if rules else []})

    # ---- outbox ----

    async def outbox(self, request: web.Request) -> web.Response:
        stats = await outbox_stats(self.pool)
        rows = await parked_rows(self.pool, 1000)
        return self.page(request, "outbox.html", {"stats": stats, "rows": rows})

    async def outbox_retry(self, request: web.Request) -> web.Response:
        principal, form = await self._action_form(request)
        ids = sorted({int(v) for v in form.getall("id", []) if str(v).isascii() and str(v).isdigit()})
        rows = [r for r in await parked_rows(self.pool, 1000) if r.id in ids]
        if form.get("step") != "confirm":
            return self.page(request, "outbox_retry.html", {"rows": rows, "ids": ids, "done": None})
        async with self.pool.acquire() as conn:
            released = await self.ports.retry_outbox(conn, ids)
        missing = sorted(set(ids) - set(released))
        result = "ok" if not missing else f"{len(missing)} not parked"
        await store.audit(self.pool, principal, "outbox.retry", ",".join(map(str, ids)) or "-", len(released), result,
                          {"released": released, "not_parked": missing})
        return self.page(request, "outbox_retry.html", {"rows": rows, "ids": ids,
                                                        "done": {"released": released, "missing": missing}})

    # ---- dead letters ----

    def _dlq_filters(self, source) -> dict:
        keys = ("reason", "since", "until", "command_id", "order_id")
        return {k: str(source.get(k, "")).strip()[:300] for k in keys if str(source.get(k, "")).strip()}

    async def dead_letters(self, request: web.Request) -> web.Response:
        if self.ports.dead_letters is None:
            return self.page(request, "unavailable.html", {"what": "Dead letters"})
        filters = self._dlq_filters(request.query)
        try:
            page = await self.ports.dead_letters.page(filters, request.query.get("after"), 50)
        except ValueError as exc:
            return self.page(request, "dead_letters.html", {"filters": filters, "page": None, "error": str(exc)},
                             status=422)
        return self.page(request, "dead_letters.html", {"filters": filters, "page": page, "error": None,
                                                        "query": urlencode(filters)})

    async def dead_letter(self, request: web.Request) -> web.Response:
        if self.ports.dead_letters is None:
            return self.page(request, "unavailable.html", {"what": "Dead letters"})
        try:
            partition, offset = int(request.match_info["partition"]), int(request.match_info["offset"])
        except ValueError:
            raise web.HTTPNotFound() from None
        letter = await self.ports.dead_letters.letter(partition, offset)
        if letter is None:
            raise web.HTTPNotFound(text="no such dead letter")
        return self.page(request, "dead_letter.html", {"letter": letter})

    async def redrive(self, request: web.Request) -> web.Response:
        principal, form = await self._action_form(request)
        if self.ports.dead_letters is None:
            raise Forbidden("dead letters are not wired in this console")
        mode = form.get("mode", "selected")
        filters = self._dlq_filters(form)
        if mode == "filter":  # the preview resolves the filter; its confirmation names exactly those letters
            try:
                positions = await self.ports.dead_letters.matching(filters, MAX_SELECTED + 1)
            except ValueError as exc:
                return self._refusal(request, 422, str(exc))
            if len(positions) > MAX_SELECTED:
                return self._refusal(request, 422, f"more than {MAX_SELECTED} dead letters match: narrow the filter")
        else:
            positions = sorted({_position(v) for v in form.getall("position", []) if _position(v) is not None})
        if not positions:
            return self.page(request, "redrive.html", {"step": "preview", "results": [], "positions": [],
                                                       "mode": mode, "filters": filters, "counts": {}})
        confirm = form.get("step") == "confirm"
        results = await self.ports.dead_letters.redrive(positions, dry_run=not confirm)
        counts = {key: sum(1 for r in results if r["outcome"] == outcome)
                  for key, outcome in (("sent", "redriven"), ("skipped", "skipped"), ("failed", "failed"))}
        reasons: dict[str, int] = {}
        for r in results:
            if r["outcome"] == "skipped":
                reasons[r["why"]] = reasons.get(r["why"], 0) + 1
        if confirm:
            target = "filter " + urlencode(filters) if mode == "filter" else ",".join(f"{p}:{o}" for p, o in positions)
            await store.audit(self.pool, principal, "dlq.redrive", target[:2000], counts["sent"],
                              redrive_result(results), {"positions": [f"{p}:{o}" for p, o in positions][:1000],
                                                        **counts})
        return self.page(request, "redrive.html", {
            "step": "done" if confirm else "preview", "results": results, "counts": counts, "reasons": reasons,
            "positions": [f"{p}:{o}" for p, o in positions], "mode": mode, "filters": filters})

    # ---- health ----

    async def health(self, request: web.Request) -> web.Response:
        return self.page(request, "health.html", await self._health_panels())

    async def health_panels(self, request: web.Request) -> web.Response:
        """The Health page's panels alone, fresh: what the page swaps in every 10 s (htmx) without a reload."""
        return self.page(request, "health_panels.html", await self._health_panels())

    async def _health_panels(self) -> dict:
        data = await self.ports.health() if self.ports.health is not None else None
        stats = await outbox_stats(self.pool)
        charts = {name: chart_svg(name, points) for name, points in ((data or {}).get("series") or {}).items()}
        return {"data": data or {}, "stats": stats, "charts": charts, "updated_at": datetime.now(timezone.utc)}

    # ---- emails ----

    async def resend(self, request: web.Request) -> web.Response:
        principal, form = await self._action_form(request)
        event_id = str(form.get("event_id") or "").strip()[:100]
        order_id = str(form.get("order_id") or "")
        if form.get("step") != "confirm":
            sent = await store.emails(self.pool, [event_id]) if _uuid(event_id) else {}
            return self.page(request, "resend.html", {"event_id": event_id, "order_id": order_id,
                                                      "before": sent.get(event_id, []), "results": None, "error": None})
        try:
            results = await self.ports.resend(event_id)
            error = None
        except ValueError as exc:  # the use case's one-line refusal
            results, error = [], str(exc)
        failed = sum(1 for r in results if r["outcome"] != "sent")
        await store.audit(self.pool, principal, "email.resend", event_id, len(results),
                          error or ("ok" if not failed else f"{failed} not delivered"), {"results": results})
        return self.page(request, "resend.html", {"event_id": event_id, "order_id": order_id, "before": [],
                                                  "results": results, "error": error})

    # ---- audit ----

    async def audit(self, request: web.Request) -> web.Response:
        before = request.query.get("before")
        entries = await store.audit_entries(self.pool, 100, int(before) if before and before.isdigit() else None)
        return self.page(request, "audit.html", {"entries": entries})


def _headers(response: web.StreamResponse, started: float) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    # the server time of the request, for the browser's network panel and the timings in the README
    response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"


def _signed_out_refresh(request: web.Request) -> web.Response:
    """A partial update (htmx) after the session ended: not a sign-in page swapped into a panel (XHR follows a
    redirect unseen) but a 401 whose HX-Redirect sends the whole page to sign in, and back to it afterwards."""
    page = urlsplit(request.headers.get("HX-Current-URL", ""))
    next_path = _safe_next(page.path + (f"?{page.query}" if page.query else "") or None)
    return web.Response(status=401, text="sign in first",
                        headers={"HX-Redirect": "/sign-in?" + urlencode({"next": next_path})})


def _dumps(data) -> str:
    import json

    return json.dumps(data, default=str)


def redrive_result(results: list[dict]) -> str:
    """The audit's result of a confirmed redrive: "ok", "N skipped", or — when it stopped on a failure (the broker
    refused or was away) — "failed: <why>" or "partial: N sent, then failed: <why>", on one line."""
    sent = sum(1 for r in results if r["outcome"] == "redriven")
    skipped = sum(1 for r in results if r["outcome"] == "skipped")
    failures = [r["why"] for r in results if r["outcome"] == "failed"]
    if not failures:
        return "ok" if not skipped else f"{skipped} skipped"
    why = " ".join(str(failures[0]).split())[:300]
    result = f"partial: {sent} sent, then failed: {why}" if sent else f"failed: {why}"
    return result if not skipped else f"{result} ({skipped} skipped)"


def _position(text) -> tuple[int, int] | None:
    partition, _, offset = str(text).partition(":")
    if partition.isdigit() and offset.isdigit() and len(partition) < 6 and len(offset) < 19:
        return int(partition), int(offset)
    return None


def _uuid(text: str) -> bool:
    from uuid import UUID

    try:
        UUID(text)
        return True
    except ValueError:
        return False


def _safe_next(value) -> str:
    """Where to go after signing in: a path of this console only (never another site)."""
    value = str(value or "/orders")
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else "/orders"


def _same_origin(request: web.Request) -> bool:
    """A sign-in POST from another site is refused (login CSRF): its Origin, when sent, must be this host."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin.split("://", 1)[-1] == request.host


def chart_svg(title: str, points: list[tuple[Any, float]], width: int = 480, height: int = 120) -> str:
    """A per-minute bar chart of the last hour as inline SVG (server-drawn, no script), with a text alternative."""
    values = [float(v) for _, v in points]
    top = max(values + [1.0])
    scale = 10 ** math.floor(math.log10(top)) if top >= 1 else 1
    top = math.ceil(top / scale) * scale
    left, bottom = 36, 18
    plot_w, plot_h = width - left - 4, height - bottom - 6
    bar_w = plot_w / max(len(values), 1)
    total = sum(values)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" class="chart"><title>{jinja2.utils.markupsafe.escape(title)}: '
             f'{total:g} in the last hour, at most {max(values + [0]):g} a minute</title>',
             f'<line x1="{left}" y1="{6 + plot_h}" x2="{width - 4}" y2="{6 + plot_h}" stroke="#555"/>',
             f'<text x="{left - 4}" y="12" text-anchor="end" font-size="10">{top:g}</text>',
             f'<text x="{left - 4}" y="{6 + plot_h}" text-anchor="end" font-size="10">0</text>',
             f'<text x="{left}" y="{height - 4}" font-size="10">−60 min</text>',
             f'<text x="{width - 4}" y="{height - 4}" text-anchor="end" font-size="10">now</text>']
    for i, value in enumerate(values):
        h = plot_h * value / top
        if h > 0:
            parts.append(f'<rect x="{left + i * bar_w + 0.5:.1f}" y="{6 + plot_h - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="#1f5fa8"/>')
    parts.append("</svg>")
    return "".join(parts)


def _role_rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else len(ROLES)
