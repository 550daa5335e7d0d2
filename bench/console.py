"""The console scenario (issue 21): every page of `orderstatus console` at volume, timed by its own `Server-Timing`.

1. fresh embedded Postgres and broker (`bench.infra`); the database filled in SQL (`bench.console_seed`):
   1,000,000 orders, ~5,000,000 history rows, the last hour's commands, events, emails, parked outbox rows;
2. 100,000 dead letters produced to the DLQ topic as the worker writes them (`bench.console_letters`);
3. `orderstatus console` started as a subprocess: its own indexer reads the DLQ into `dead_letter_index` —
   the time until every letter is indexed is measured;
4. a signed-in HTTP client (a token signed by the scenario's key, exchanged for a session at /sign-in)
   requests every page round-robin, `rounds` times each, the first `warmup` rounds left out: sign-in, orders
   (random, long timelines), searches, dead letters (pages, filters, one letter, a redrive preview of many),
   health, outbox, a retry preview, rules, audit. Each answer's status is checked, the server time is read
   from `Server-Timing` and the client time is measured around the request;
5. per page p50, p95 and max of both; the verdict fails when a page's server p95 is above `P95_LIMIT_MS`.

No action is confirmed: previews only (a redrive or a retry would change what the next round measures)."""

from __future__ import annotations

import asyncio
import random
import re
import sys
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import aiohttp

from service.adapters.postgres.connection import connect
from service.devkit.embedded import free_port
from service.runtime.auth import issue_token, new_key_pair

from bench import console_letters, console_seed
from bench.infra import fresh_infra
from bench.measure import CpuProbe, percentiles
from bench.processes import Process

CONSOLE = [sys.executable, "-m", "service.entrypoints.cli", "console"]
P95_LIMIT_MS = 200.0
ISSUER, AUDIENCE = "https://id.bench.example", "orderstatus"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
NEXT = re.compile(r'after=([A-Za-z0-9_-]+)" rel="next"')
TIMING = re.compile(r"dur=([0-9.]+)")


def _say(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)


class Client:
    """A signed-in browser without a browser: a cookie jar, redirects not followed, every answer timed."""

    def __init__(self, base: str) -> None:
        self.base = base
        # a page that hangs fails the scenario with its name instead of stalling it
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                          timeout=aiohttp.ClientTimeout(total=60))
        self.csrf = ""

    async def request(self, method: str, path: str, data: dict | None = None) -> tuple[int, str, float, float]:
        """(status, body, server ms from Server-Timing, client ms)."""
        started = time.perf_counter()
        async with self.http.request(method, self.base + path, data=data, allow_redirects=False) as response:
            body = await response.text()
            client_ms = (time.perf_counter() - started) * 1000
            found = TIMING.search(response.headers.get("Server-Timing", ""))
            if found is None:
                raise AssertionError(f"{method} {path}: no Server-Timing header")
            return response.status, body, float(found.group(1)), client_ms

    async def sign_in(self, token: str) -> tuple[int, str, float, float]:
        answer = await self.request("POST", "/sign-in", {"token": token, "next": "/orders"})
        if answer[0] != 303:
            raise AssertionError(f"sign-in answered {answer[0]}: {answer[1][:300]}")
        return answer

    async def close(self) -> None:
        await self.http.close()


def _pages(data: dict, rng: random.Random, client: Client, token: str) -> dict:
    """Page name -> a coroutine function making one request of it: (status expected, answer)."""
    orders, long_orders, commands = data["orders"], data["long_orders"], data["commands"]
    letters, cursors, reasons, parked = data["letters"], data["cursors"], data["reasons"], data["parked"]
    since, until = data["window"]

    def get(path_of, expected=200):
        async def one():
            return expected, await client.request("GET", path_of())
        return one

    def post(path, form_of, expected=200):
        async def one():
            return expected, await client.request("POST", path, {"csrf": client.csrf, **form_of()})
        return one

    async def sign_in():
        answer = await client.sign_in(token)
        client.csrf = CSRF.search((await client.request("GET", "/audit"))[1]).group(1)
        return 303, answer

    def letter_filter(**query) -> str:
        return "/dead-letters?" + urlencode(query)

    return {
        "sign-in": sign_in,
        "order": get(lambda: f"/orders/{rng.choice(orders)}"),
        "order (500 changes)": get(lambda: f"/orders/{rng.choice(long_orders)}"),
        "search: order id": get(lambda: f"/orders?q={rng.choice(orders)}", 303),
        "search: command id": get(lambda: "/orders?" + urlencode({"q": rng.choice(commands)[0]}), 303),
        "search: event id": get(lambda: "/orders?" + urlencode({"q": rng.choice(data["event_ids"])}), 303),
        # a client with one order is sent to it (303), one with several gets the list
        "search: client id": get(lambda: "/orders?" + urlencode({"q": rng.choice(data["clients"])}), (200, 303)),
        "dead letters": get(lambda: "/dead-letters"),
        "dead letters: later page": get(lambda: "/dead-letters?after=" + rng.choice(cursors)),
        "dead letters: reason": get(lambda: letter_filter(reason=rng.choice(reasons))),
        "dead letters: order id": get(lambda: letter_filter(order_id=rng.choice(letters)["order_id"])),
        "dead letters: command id": get(lambda: letter_filter(command_id=rng.choice(letters)["command_id"])),
        "dead letters: time range": get(lambda: letter_filter(since=since, until=until)),
        "dead letter in full": get(lambda: "/dead-letters/{partition}/{offset}".format(**rng.choice(letters))),
        "redrive preview (filter)": post("/dead-letters/redrive",
                                         lambda: {"mode": "filter", "reason": "too_large",
                                                         "since": data["redrive_window_since"]}),
        "health": get(lambda: "/health"),
        "outbox": get(lambda: "/outbox"),
        "outbox retry preview": post("/outbox/retry", lambda: {"id": [str(i) for i in parked], "step": "preview"}),
        "rules": get(lambda: "/rules"),
        "audit": get(lambda: "/audit"),
    }


async def _measure_pages(base: str, data: dict, rounds: int, warmup: int) -> dict:
    rng = random.Random(2121)
    private, _ = data["key"]
    token = issue_token(private, sub="bench-manager", role="manager", name="Bench", ttl=timedelta(hours=2),
                        issuer=ISSUER, audience=AUDIENCE)
    client = Client(base)
    try:
        await client.sign_in(token)
        client.csrf = CSRF.search((await client.request("GET", "/audit"))[1]).group(1)
        # cursors of later pages, as a user paging back finds them (the page's own "older" link)
        path, cursors = "/dead-letters", []
        for _ in range(40):
            body = (await client.request("GET", path))[1]
            found = NEXT.search(body)
            if found is None:
                break
            cursors.append(found.group(1))
            path = "/dead-letters?after=" + found.group(1)
        data["cursors"] = cursors[5:] or cursors
        pages = _pages(data, rng, client, token)
        server: dict[str, list[float]] = {name: [] for name in pages}
        clients: dict[str, list[float]] = {name: [] for name in pages}
        for n in range(rounds + warmup):
            for name, one in pages.items():
                try:
                    expected, (status, body, server_ms, client_ms) = await one()
                except asyncio.TimeoutError:
                    raise TimeoutError(f"{name}: no answer in 60 s") from None
                if status not in (expected if isinstance(expected, tuple) else (expected,)):
                    raise AssertionError(f"{name}: {status}, expected {expected}: {body[:300]}")
                if n >= warmup:
                    server[name].append(server_ms)
                    clients[name].append(client_ms)
        return {name: {"requests": len(server[name]), "server_ms": percentiles(server[name], (50, 95)),
                       "client_ms": percentiles(clients[name], (50, 95))} for name in pages}
    finally:
        await client.close()


async def _samples(conn, letters_wanted: int = 400) -> dict:
    """What the requests ask for, picked from the data: orders, searches, letters, parked rows."""
    first, last = await conn.fetchrow("SELECT min(order_id), max(order_id) FROM orders WHERE order_id >= $1",
                                      console_seed.FIRST_ORDER)
    rng = random.Random(7)
    orders = [rng.randint(first, last) for _ in range(2000)]
    long_orders = [r["order_id"] for r in await conn.fetch(
        "SELECT order_id FROM orders WHERE version >= $1 LIMIT 500", console_seed.LONG_HISTORY)] or orders[:10]
    commands = await console_seed.fix_event_ids(conn, 500)
    event_ids = [str(r["event_id"]) for r in await conn.fetch(
        "SELECT event_id FROM order_history WHERE order_id = ANY($1::bigint[])", orders[:300])]
    clients = [r["client_id"] for r in await conn.fetch(
        "SELECT DISTINCT client_id FROM orders WHERE order_id = ANY($1::bigint[])", orders[:300])]
    letters = [dict(r) for r in await conn.fetch(
        'SELECT partition, "offset", order_id, command_id FROM dead_letter_index '
        "WHERE order_id IS NOT NULL AND command_id IS NOT NULL ORDER BY random() LIMIT $1", letters_wanted)]
    reasons = [r["reason"] for r in await conn.fetch("SELECT DISTINCT reason FROM dead_letter_index")]
    span = await conn.fetchrow("SELECT min(written_at) AS oldest, max(written_at) AS newest FROM dead_letter_index")
    middle = span["oldest"] + (span["newest"] - span["oldest"]) / 2
    window = ((middle - timedelta(hours=6)).isoformat(), (middle + timedelta(hours=6)).isoformat())
    parked = [r["id"] for r in await conn.fetch(
        "SELECT id FROM outbox WHERE parked_at IS NOT NULL AND held_behind IS NULL ORDER BY id LIMIT 5")]
    return {"orders": orders, "long_orders": long_orders, "commands": commands, "event_ids": event_ids,
            "clients": clients, "letters": letters, "reasons": reasons, "window": window, "parked": parked,
            "redrive_window_since": (span["newest"] - timedelta(days=2)).isoformat()}


async def _wait_http(base: str, process: Process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            process.check_alive()
            try:
                async with http.get(base + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise TimeoutError("the console did not answer /healthz")


async def _wait_indexed(conn, count: int, process: Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await conn.fetchval("SELECT count(*) FROM dead_letter_index") < count:
        process.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {count:,} dead letters indexed after {timeout:.0f}s")
        await asyncio.sleep(0.5)


async def console(orders: int, letters: int, partitions: int, rounds: int, warmup: int, timeout_s: float) -> dict:
    """The scenario; `orders` orders (history ≈ 5 × orders), `letters` dead letters, each page `rounds` times."""
    clock = time.monotonic()
    _say(f"console: fresh infrastructure, {orders:,} orders, {letters:,} dead letters")
    async with fresh_infra([], partitions) as infra:
        s = infra.settings
        conn = await connect(infra.postgres.url)
        try:
            started = time.monotonic()
            counts = await console_seed.seed(conn, orders, s.events_topic, partitions,
                                             say=lambda what: _say(f"console: seeded {what}"))
            seed_s = time.monotonic() - started
            _say(f"console: database seeded in {seed_s:.0f}s: {counts}")
            last = console_seed.FIRST_ORDER + orders - 1
            produced = await console_letters.produce_letters(s.kafka_bootstrap_servers, s.commands_topic, s.dlq_topic,
                                                             letters, (console_seed.FIRST_ORDER, last), partitions)
            _say(f"console: {letters:,} dead letters produced in {produced['produce_s']}s")

            private, public = new_key_pair()
            keys = infra.scratch / "console-signing.pub.pem"
            keys.write_bytes(public)
            port = free_port()
            env = infra.env({"ORDERSTATUS_AUTH_PUBLIC_KEYS": str(keys), "ORDERSTATUS_AUTH_ISSUER": ISSUER,
                             "ORDERSTATUS_AUTH_AUDIENCE": AUDIENCE, "ORDERSTATUS_CONSOLE_PORT": str(port),
                             "ORDERSTATUS_HTTP_HOST": "127.0.0.1"})
            started = time.monotonic()
            process = Process(CONSOLE, env, infra.scratch / "console.log")
            try:
                base = f"http://127.0.0.1:{port}"
                await _wait_http(base, process)
                await _wait_indexed(conn, letters, process, timeout_s)
                index_s = time.monotonic() - started
                _say(f"console: {letters:,} dead letters indexed {index_s:.1f}s after the console started")
                await conn.execute("ANALYZE dead_letter_index")
                data = {**await _samples(conn), "key": (private, public)}
                probe = CpuProbe([process.pid], infra.postgres.process.pid, infra.broker_pid)
                before = probe.snapshot()
                pages = await _measure_pages(base, data, rounds, warmup)
                cpu = CpuProbe.delta(before, probe.snapshot())
                process.check_alive()
            finally:
                code = await process.stop()
        finally:
            await conn.close()
    slow = sorted(name for name, page in pages.items() if page["server_ms"]["p95"] > P95_LIMIT_MS)
    result = {
        "scenario": "console",
        "orders": orders,
        "rows": counts,
        "dead_letters": letters,
        "seed_s": round(seed_s, 1),
        "letters_produce_s": produced["produce_s"],
        "index_s": round(index_s, 1),
        "index_letters_per_s": round(letters / index_s),
        "rounds": rounds,
        "warmup_rounds": warmup,
        "p95_limit_ms": P95_LIMIT_MS,
        "pages": pages,
        "cpu_s": cpu,
        "console_exit_code": code,
        "slow_pages": slow,
        "checks": {"slow_pages": slow, "console_exit_code": code},
        "elapsed_s": round(time.monotonic() - clock, 1),
        "verified": not slow and code == 0,
    }
    _say(f"console: {len(pages)} pages, slowest server p95 "
         f"{max(p['server_ms']['p95'] for p in pages.values())} ms; over {P95_LIMIT_MS:.0f} ms: {slow or 'none'}")
    return result


def table(result: dict) -> str:
    """The pages' figures as a text table."""
    head = f"{'console page':<28}{'n':>5}{'srv p50':>9}{'srv p95':>9}{'srv max':>9}{'cli p50':>9}{'cli p95':>9}  ok"
    lines = [head, "-" * len(head)]
    for name, page in result["pages"].items():
        s, c = page["server_ms"], page["client_ms"]
        ok = "yes" if s["p95"] <= result["p95_limit_ms"] else "NO"
        lines.append(f"{name:<28}{page['requests']:>5}{s['p50']:>9}{s['p95']:>9}{s['max']:>9}{c['p50']:>9}"
                     f"{c['p95']:>9}  {ok}")
    lines.append(f"seeded in {result['seed_s']}s ({result['rows']}); "
                 f"{result['dead_letters']:,} dead letters produced in "
                 f"{result['letters_produce_s']}s and indexed by the console in {result['index_s']}s "
                 f"({result['index_letters_per_s']:,}/s); ms, server = Server-Timing, client = around the request")
    return "\n".join(lines)
