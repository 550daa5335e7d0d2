"""`orderstatus dev`: the whole stack on one machine with no Docker, on the suite's engine (`--broker embedded`
in `make test`, `--broker apache` in `make test-kafka`), as a newcomer runs it: the banner comes when every
process is ready, its `export` block runs the README's examples from a second shell, whatever ends the dev
process ends every process it started, a killed run does not stop the next one, a quick restart keeps the
ports, `--reset` starts over, and the demo's outcomes are the expected ones on a fresh and a reused directory."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from service.devkit.embedded import EmbeddedPostgres, process_alive, scratch_dir
from tests.helpers.cli import REPO, ok, run_cli_async
from tests.helpers.dev_stack import ENGINE, DevStack, clean_env
from tests.helpers.waiting import wait_until

CHANGE = {"type": "ChangeOrderStatus", "order_id": 1029, "status": 21,
          "actor": {"id": "u-7", "role": "client", "client_id": "c-1"}}


def descendants(pid: int) -> set[int]:
    """Every process below `pid` now (children in their own sessions included: the parent link stays)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


async def all_gone(pids: set[int], timeout: float = 60) -> None:
    await wait_until(lambda: not [p for p in pids if process_alive(p)], timeout,
                     f"every process the dev stack started to end (alive: {[p for p in pids if process_alive(p)]})")


def http_get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def readme_examples() -> list[str]:
    """The commands of the README's "Trying it by hand" block, each whole (continued lines joined by bash's rules)."""
    text = (REPO / "README.md").read_text()
    block = text.split("## Trying it by hand", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands, pending = [], []
    for line in block.splitlines():
        pending.append(line)
        if line.endswith("\\"):
            continue
        if subprocess.run(["bash", "-n", "-c", "\n".join(pending)], capture_output=True).returncode == 0:
            commands.append("\n".join(pending))
            pending = []
    assert not pending and commands, f"README block not parsed: {pending}"
    return commands


def in_second_shell(exports: str, command: str) -> subprocess.CompletedProcess:
    """`command` in a new bash with the pasted export block, from the repository folder, as the README says."""
    return subprocess.run(["bash", "-c", f"{exports}\n{command}"], env=clean_env(), cwd=REPO, capture_output=True,
                          text=True, timeout=120)


async def changed_to(env: dict[str, str], order_id: int) -> list:
    """The statuses the order was changed to, oldest first, as `orderstatus history` prints them."""
    printed = json.loads(ok(await run_cli_async(env, "history", str(order_id))).stdout)
    return [entry["to_status"]["id"] for entry in printed["history"]]


class TestSecondShell:
    async def test_banner_comes_when_every_process_is_ready_and_its_exports_run_every_readme_example(self):
        """The banner lists every process and comes only once each is ready (consumers with partitions); the
        pasted export block runs each README example as written: sends, history, transitions, the read API and the
        gateway with the tokens, a token issued, an email resent through the sink."""
        data_dir = scratch_dir("orderstatus-dev-data-")
        stack = DevStack(data_dir, "--reset")
        try:
            await stack.up()
            ports = stack.ports()
            for name in ("worker", "notifier", "gateway"):  # at once: no waiting after the banner
                status, body = http_get(f"http://127.0.0.1:{ports[name]}/readyz")
                assert status == 200, f"{name} not ready when the banner came: {body}"
            for name in ("worker", "notifier"):
                assert http_get(f"http://127.0.0.1:{ports[name]}/status")[1]["lag"], f"{name} had no partitions"
            exports = stack.exports()
            for needed in ("ORDERSTATUS_AUTH_PUBLIC_KEYS", "ORDERSTATUS_AUTH_PRIVATE_KEY_FILE", "ORDERSTATUS_AUTH_ISSUER",
                           "ORDERSTATUS_AUTH_AUDIENCE", "ORDERSTATUS_SMTP_PORT", "GATEWAY_URL", "CLIENT_TOKEN"):
                assert f"export {needed}=" in exports, f"{needed} missing from the export block"
            for command in readme_examples():
                command = command.replace(".orderstatus-dev/", f"{data_dir}/")
                result = in_second_shell(exports, command)
                assert result.returncode == 0, f"{command}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"
                if "orderstatus send '" in command:  # the next examples read what it changed
                    env = await stack.up()
                    await wait_until(lambda: changed_to(env, 1029), 60, "the sent change in the history")
            for command in ("lag", "outbox status", "dlq list", "rules graph", "events tail --count 1 --json"):
                # the operator's commands too; `events tail` follows from the end: a change arrives for it
                if command.startswith("events"):
                    tail = subprocess.Popen(["bash", "-c", f"{exports}\n.venv/bin/orderstatus {command}"],
                                            env=clean_env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            text=True)
                    change = {**CHANGE, "order_id": 1030, "status": "OnHold",
                              "actor": {"id": "m-1", "role": "manager"}}
                    while tail.poll() is None:  # until its consumer is at the end and sees one
                        ok(await run_cli_async(await stack.up(), "send", json.dumps(change)))
                        try:
                            tail.wait(5)
                        except subprocess.TimeoutExpired:
                            pass
                    result = subprocess.CompletedProcess(tail.args, tail.returncode, *tail.communicate())
                else:
                    result = in_second_shell(exports, f".venv/bin/orderstatus {command}")
                assert result.returncode == 0, f"{command}\nexit {result.returncode}\n{result.stdout}\n{result.stderr}"
            env = await stack.up()
            assert await changed_to(env, 1029) == [21]
            assert await changed_to(env, 1033) == [2]  # send --wait
            assert await changed_to(env, 3003) == [109]  # the gateway's PUT
        finally:
            assert stack.interrupt() == 0, stack.text()

    async def test_dev_stack_applies_a_change_stops_on_ctrl_c_and_reset_starts_over(self):
        """On the suite's engine: a change sent from a second shell applies; Ctrl-C exits 0; a restart keeps the
        history; `--reset` starts from empty data again."""
        data_dir = scratch_dir("orderstatus-dev-data-")
        first = DevStack(data_dir, "--reset")
        try:
            env = await first.up()
            assert ("Apache Kafka" if ENGINE == "apache" else "tansu") in first.text()
            sent = await run_cli_async(env, "send", "--wait", "--timeout", "60", json.dumps(CHANGE))
            assert sent.returncode == 0, sent.stdout + sent.stderr
            assert await changed_to(env, 1029) == [21]
        finally:
            assert first.interrupt() == 0, first.text()
        assert "orderstatus dev stopped" in first.text()

        again = DevStack(data_dir)
        try:
            env = await again.up()
            assert await changed_to(env, 1029) == [21], "history lost"
            assert "kept their status" in again.text(), "the re-import did not say it kept 1029's status"
        finally:
            assert again.interrupt() == 0, again.text()

        fresh = DevStack(data_dir, "--reset")
        try:
            env = await fresh.up()
            assert await changed_to(env, 1029) == [], "--reset kept the old history"
        finally:
            assert fresh.interrupt() == 0, fresh.text()


class TestWholeStackStops:
    async def test_a_hang_up_ends_every_process_it_started(self):
        """SIGHUP (the terminal closed) stops the dev process and every process below it, the servers included."""
        stack = DevStack(scratch_dir("orderstatus-dev-data-"), "--reset")
        try:
            await stack.up()
            started = descendants(stack.proc.pid)
            assert len(started) >= 5, started  # Postgres, the broker, worker, notifier, gateway
        except BaseException:
            stack.interrupt()
            raise
        assert stack.stop(signal.SIGHUP) == 0, stack.text()
        await all_gone(started)

    async def test_sigterm_ends_every_process_and_a_quick_restart_keeps_the_ports(self):
        """A second run on the same directory is refused in one line; SIGTERM leaves no process behind, and a run
        started at once after it listens on the same ports (the servers' ports in TIME_WAIT are free for the probe)."""
        data_dir = scratch_dir("orderstatus-dev-data-")
        first = DevStack(data_dir, "--reset")
        try:
            await first.up()
            ports, started = first.ports(), descendants(first.proc.pid)
            second = DevStack(data_dir)  # a second run on the same directory meanwhile: refused, nothing touched
            assert second.proc.wait(60) == 1, second.text()
            second.file.close()
            assert f"another `orderstatus dev` (pid {first.proc.pid})" in second.text(), second.text()
            assert all(process_alive(pid) for pid in started)
        except BaseException:
            first.interrupt()
            raise
        assert first.stop(signal.SIGTERM) == 0, first.text()
        await all_gone(started)
        again = DevStack(data_dir)
        try:
            await again.up()
            assert again.ports() == ports, f"moved: {ports} -> {again.ports()}"
        finally:
            assert again.interrupt() == 0, again.text()

    async def test_after_a_kill_9_the_next_run_on_the_same_directory_starts(self):
        """kill -9 of the dev process: its processes end with it (parent-death signal), and a new `orderstatus dev`
        on the same data directory starts at once and applies a change, with nothing of the old run left."""
        data_dir = scratch_dir("orderstatus-dev-data-")
        first = DevStack(data_dir, "--reset")
        try:
            await first.up()
            started = descendants(first.proc.pid)
        except BaseException:
            first.interrupt()
            raise
        first.proc.kill()
        first.proc.wait(30)
        first.file.close()
        again = DevStack(data_dir)
        try:
            env = await again.up()
            sent = await run_cli_async(env, "send", "--wait", "--timeout", "60", json.dumps(CHANGE))
            assert sent.returncode == 0, sent.stdout + sent.stderr + again.text()
            await all_gone(started)
        finally:
            assert again.interrupt() == 0, again.text()
        assert "Traceback" not in again.text(), again.text()


    async def test_a_postgres_still_running_on_the_data_directory_is_named_in_one_line(self):
        """A PostgreSQL this run did not start (no pid file names it) still serving the data directory's database:
        `orderstatus dev` exits 1 with one line naming its pid and the command that stops it, no traceback."""
        data_dir = scratch_dir("orderstatus-dev-data-")
        stale = EmbeddedPostgres(data_dir / "postgres").start()
        try:
            stack = DevStack(data_dir)
            assert stack.proc.wait(120) == 1, stack.text()
            stack.file.close()
            text = stack.text()
            assert "Traceback" not in text, text
            lines = [line for line in text.splitlines() if "dev set-up failed" in line]
            assert len(lines) == 1 and f"kill -INT {stale.process.pid}" in lines[0], text
            assert process_alive(stale.process.pid), "a server this run did not start was stopped"
        finally:
            stale.stop()


class TestDemo:
    async def test_demo_outcomes_are_the_expected_ones_on_a_fresh_and_a_reused_directory(self):
        """`orderstatus dev --demo` prints each scenario's expected outcome beside the actual one, and every one is
        as expected on a fresh data directory and again on the same directory after a change by hand."""
        data_dir = scratch_dir("orderstatus-dev-data-")
        for args in (["--reset"], []):
            stack = DevStack(data_dir, "--demo", *args)
            try:
                env = await stack.up()
                await wait_until(lambda: "outcomes as expected" in stack.text(), 120, "the demo's table")
                assert re.search(r"(\d+) of \1 outcomes as expected\.", stack.text()), stack.text()
                assert "expected" in stack.text() and "actual" in stack.text()
                if args:  # what a user does before the next `make demo`
                    ok(await run_cli_async(env, "send", "--wait", "--timeout", "60", json.dumps(CHANGE)))
            finally:
                assert stack.interrupt() == 0, stack.text()
