"""Operator tools of issue 11 against the real worker, notifier, broker and Postgres: `send --wait` and its
exit codes, `events tail`, `orderstatus lag` and the Prometheus series the running processes export
(lag, rejections and dead letters by reason, end-to-end latency, readiness)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess

from prometheus_client.parser import text_string_to_metric_families

from service.devkit.embedded import free_port
from service.runtime.settings import Settings
from tests.helpers.cli import ok, run_cli_async, start_cli
from tests.helpers.commands import change, override
from tests.helpers.database import fetchval, seed
from tests.helpers.offsets import log_ends
from tests.helpers.probes import get
from tests.helpers.producing import produce
from tests.helpers.services import running_notifier, running_worker
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until


def json_lines(result: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


async def send_wait(env: dict[str, str], command: dict | None = None, *options: str) -> subprocess.CompletedProcess:
    args = ["send", "--wait", *options] + ([json.dumps(command)] if command is not None else [])
    return await run_cli_async(env, *args)


class TestSendWait:
    async def test_exit_codes_say_applied_rejected_or_timed_out(self, settings, cli_env):
        """0 with the OrderStatusChanged printed, 3 for a rejection (also an invalid command or one failed batch
        item), 4 when no worker answers within --timeout."""
        await seed(settings)
        late = await send_wait(cli_env, change(1033, "Confirmed"), "--timeout", "1")
        assert late.returncode == 4, late.stderr
        assert "no outcome for command" in late.stderr and len(json_lines(late)) == 1  # only the sent line

        async with running_worker(settings):
            applied = await send_wait(cli_env, change(3001, "QuoteAccepted", role="client", client_id="c-4"))
            assert applied.returncode == 0, applied.stderr
            sent, event = json_lines(applied)
            # the printed place is where the worker read the command from
            read_at = await fetchval(settings, "SELECT source FROM processed_commands WHERE command_id = $1",
                                     sent["command_id"])
            assert read_at == f"{settings.commands_topic}:{sent['partition']}:{sent['offset']}"
            assert event["type"] == "OrderStatusChanged"
            assert event["command_id"] == sent["command_id"] and event["to_status"]["code"] == "QuoteAccepted"

            rejected = await send_wait(cli_env, change(2001, "Received"))
            assert rejected.returncode == 3, rejected.stderr
            assert json_lines(rejected)[1]["reason"] == "transition_not_allowed"

            invalid = await send_wait(cli_env, {"type": "ChangeOrderStatus", "order_id": 1033, "status": 2},
                                      "--no-validate")
            assert invalid.returncode == 3 and json_lines(invalid)[1]["reason"] == "invalid_command"

            partial = await send_wait(cli_env, override([(1034, "CourierClaim"), (4242, "OnHold")]))
            assert partial.returncode == 3, partial.stderr
            # the summary decides (the items' events are keyed by order, so they may come after it)
            [summary] = [e for e in json_lines(partial)[1:] if e.get("type") == "OrderStatusOverrideCompleted"]
            assert [r["success"] for r in summary["results"]] == [True, False]

            lines = "\n".join(json.dumps(c) for c in (change(1029, "OnHold", role="manager"),
                                                      change(1031, "Dispatched")))
            both = await run_cli_async(cli_env, "send", "--wait", "--file", "-", input=lines)
            assert both.returncode == 0, both.stderr
            assert [e.get("type") for e in json_lines(both)[2:]] == ["OrderStatusChanged"] * 2


def on_a_terminal(env: dict[str, str], *args: str, timeout: float = 120) -> tuple[int, str]:
    """Run `orderstatus ARGS…` with its stdout on a pseudo-terminal (as a person runs it): exit code, output."""
    import os
    import pty

    from tests.helpers.cli import REPO, cli_command

    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(cli_command(*args), env=env, cwd=REPO, stdout=follower, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = proc.wait(timeout=timeout)
        proc.stderr.close()
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    return code, b"".join(chunks).decode().replace("\r\n", "\n")


class TestSendWaitForPeople:
    """Issue 20: on a terminal `send --wait` prints one human line per outcome; `--json` keeps the JSON lines."""

    async def test_a_terminal_gets_one_line_per_outcome_and_json_on_request(self, settings, cli_env):
        """applied: order N From -> To vV / rejected: reason — message; `--json` on a terminal prints JSON lines,
        `--human` when piped prints the human lines."""
        await seed(settings)
        async with running_worker(settings):
            code, out = await asyncio.to_thread(on_a_terminal, cli_env, "send", "--wait",
                                                json.dumps(change(1029, "OnHold", role="manager")))
            assert code == 0 and re.fullmatch(r"applied: order 1029 Confirmed -> OnHold v\d+", out.strip()), out
            code, out = await asyncio.to_thread(on_a_terminal, cli_env, "send", "--wait",
                                                json.dumps(change(2001, "Received")))
            [line] = out.splitlines()
            assert code == 3 and line.startswith("rejected: transition_not_allowed — "), out
            code, out = await asyncio.to_thread(on_a_terminal, cli_env, "send", "--wait", "--json",
                                                json.dumps(change(1029, "Confirmed", role="manager")))
            assert code == 0 and [json.loads(x).get("type") for x in out.splitlines()][1:] == ["OrderStatusChanged"]
            piped = await send_wait(cli_env, change(1033, "Confirmed"), "--human")
            assert piped.returncode == 0 and re.fullmatch(r"applied: order 1033 \S+ -> Confirmed v\d+",
                                                          piped.stdout.strip()), piped.stdout


class TestEventsTail:
    async def test_prints_one_readable_line_per_event_of_the_order(self, settings, cli_env):
        """`events tail --order-id` follows from the end: earlier events are not shown, later ones of the order
        are (a batch summary naming it too), one line each; --json prints the events themselves."""
        await seed(settings)
        async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
            before = change(1033, "Confirmed")
            await produce(settings, [before])
            await events_for(reader, {before["command_id"]})
            readable = start_cli(cli_env, "events", "tail", "--order-id", "1033", "--count", "4",
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            raw = start_cli(cli_env, "events", "tail", "--type", "OrderStatusChangeRejected", "--json", "--count", "1",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                for proc in (readable, raw):
                    assert "from its end" in await asyncio.to_thread(proc.stderr.readline)
                commands = [change(1029, "OnHold", role="manager"), change(1033, "ReadyToShip"),
                            change(1033, "ReadyToShip")]
                await produce(settings, commands)
                await events_for(reader, {c["command_id"] for c in commands})
                batch = override([(1033, "OnHold")])  # keyed by its command id: sent once the others are done
                await produce(settings, [batch])
                out, _ = await asyncio.to_thread(readable.communicate, timeout=60)
                raw_out, _ = await asyncio.to_thread(raw.communicate, timeout=60)
            finally:
                for proc in (readable, raw):
                    if proc.poll() is None:
                        proc.kill()
        assert readable.returncode == 0 and raw.returncode == 0
        lines = out.splitlines()
        assert len(lines) == 4 and not any(before["command_id"] in line for line in lines)
        expected = [
            f"OrderStatusChanged order 1033 v2: Confirmed -> ReadyToShip by staff staff-1 "
            f"[command {commands[1]['command_id']}]",
            "OrderStatusChangeRejected order 1033: ReadyToShip refused, no_change: ",
            f"OrderStatusChanged order 1033 v3: ReadyToShip -> OnHold (override) by manager manager-1 "
            f"[command {batch['command_id']}]",
            f"OrderStatusOverrideCompleted: 1/1 items applied [command {batch['command_id']}]",
        ]
        for fragment in expected:
            assert sum(fragment in line for line in lines) == 1, (fragment, lines)
        # the order's events share a partition, so they come in version order; the summary is keyed by its
        # command id (another partition) and may come before or between them
        of_the_order = [next(i for i, line in enumerate(lines) if fragment in line) for fragment in expected[:3]]
        assert of_the_order == sorted(of_the_order), lines
        [event] = [json.loads(line) for line in raw_out.splitlines()]
        assert event["type"] == "OrderStatusChangeRejected" and event["command_id"] == commands[2]["command_id"]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a /metrics body: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


async def scrape(port: int) -> dict:
    status, body = await get(port, "/metrics")
    assert status == 200
    return samples(body)


class TestLag:
    async def test_lag_numbers_match_what_was_produced_and_consumed(self, settings, cli_env):
        """Before the worker: the whole topic is lag; after the worker and the notifier: committed = end, lag 0,
        in the CLI and in each process's orderstatus_consumer_lag gauge."""
        await seed(settings)
        commands = [change(5000 + i, "Confirmed") for i in range(12)] + [change(1033, "Confirmed")]
        await produce(settings, commands, separately=True)  # one record per batch: the broker's end is exact
        ends = await log_ends(settings, settings.commands_topic)
        assert sum(ends.values()) == len(commands)

        before = json.loads(ok(await run_cli_async(cli_env, "lag", "--json")).stdout)
        worker_rows = [r for r in before if r["group"] == settings.worker_group]
        assert [(r["partition"], r["committed"], r["end"], r["lag"]) for r in worker_rows] == [
            (p, None, ends[p], ends[p]) for p in sorted(ends)]
        assert {(r["topic"], r["end"], r["lag"]) for r in before if r["group"] == settings.notifier_group} == {
            (settings.events_topic, 0, 0)}

        worker_port, notifier_port = free_port(), free_port()
        settings = settings.model_copy(update={"http_port": worker_port, "notifier_http_port": notifier_port})
        async with running_worker(settings), running_notifier(settings), \
                TopicReader(settings, settings.events_topic) as reader:
            await events_for(reader, {c["command_id"] for c in commands})
            event_ends = await log_ends(settings, settings.events_topic)
            assert sum(event_ends.values()) == len(commands)

            async def caught_up():
                rows = json.loads(ok(await run_cli_async(cli_env, "lag", "--json")).stdout)
                return rows if all(r["lag"] == 0 and r["committed"] == r["end"] for r in rows if r["end"]) else None

            rows = await wait_until(caught_up, 60, "both groups to commit everything", interval=0.5)
            done = {(r["group"], r["partition"]): (r["committed"], r["end"]) for r in rows if r["committed"]}
            assert done == {**{(settings.worker_group, p): (e, e) for p, e in ends.items() if e},
                            **{(settings.notifier_group, p): (e, e) for p, e in event_ends.items() if e}}

            table = ok(await run_cli_async(cli_env, "lag")).stdout.splitlines()
            assert table[0].split() == ["GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]
            assert len(table) == 1 + 2 * 3

            async def gauges_at_zero():
                found = {**await scrape(worker_port), **await scrape(notifier_port)}
                lags = {(dict(labels)["service"], dict(labels)["partition"]): v
                        for (name, labels), v in found.items() if name == "orderstatus_consumer_lag"}
                return lags if len(lags) == 6 and set(lags.values()) == {0.0} else None

            lags = await wait_until(gauges_at_zero, 30, "every partition's lag gauge at 0", interval=0.5)
            assert {service for service, _ in lags} == {"worker", "notifier"}


class TestMetrics:
    async def test_outcomes_by_reason_latency_and_readiness_are_exported(self, settings):
        """A change, a rejection, an invalid command and garbage: rejections and dead letters by reason, one
        end-to-end observation per event acknowledged, and orderstatus_ready 1."""
        await seed(settings)
        port = free_port()
        settings = settings.model_copy(update={"http_port": port})
        applied, rejected = change(1033, "Confirmed"), change(2001, "Received")
        invalid = {"type": "ChangeOrderStatus", "command_id": "no-actor", "order_id": 1033, "status": 2}
        async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
            await produce(settings, [applied, rejected, invalid, b"not json"])
            await events_for(reader, {applied["command_id"], rejected["command_id"], "no-actor"})

            async def observed():
                found = await scrape(port)
                count = value(found, "orderstatus_end_to_end_seconds_count", service="worker")
                return found if count == 3 else None

            found = await wait_until(observed, 20, "three end-to-end observations", interval=0.2)
        assert value(found, "orderstatus_rejections_total", service="worker", reason="transition_not_allowed") == 1
        assert value(found, "orderstatus_rejections_total", service="worker", reason="invalid_command") == 1
        assert value(found, "orderstatus_dead_letters_total", service="worker", reason="validation_failed") == 1
        assert value(found, "orderstatus_dead_letters_total", service="worker", reason="not_json") == 1
        total = value(found, "orderstatus_end_to_end_seconds_sum", service="worker")
        assert 0 < total < 60
        assert value(found, "orderstatus_ready", service="worker") in (0.0, 1.0)
        assert value(found, "orderstatus_end_to_end_seconds_bucket", service="worker", le="+Inf") == 3

    async def test_readiness_gauge_follows_readyz(self, settings):
        """orderstatus_ready is 1 once /readyz says ready."""
        await seed(settings)
        port = free_port()
        settings = settings.model_copy(update={"http_port": port})
        async with running_worker(settings):
            async def ready():
                status, _ = await get(port, "/readyz")
                return status == 200 and value(await scrape(port), "orderstatus_ready", service="worker") == 1.0

            await wait_until(ready, 30, "the worker to be ready and say so in /metrics", interval=0.2)
