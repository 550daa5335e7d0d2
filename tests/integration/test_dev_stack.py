"""`orderstatus dev`: the whole stack on one machine with no Docker, on the suite's engine (`--broker embedded`
in `make test`, `--broker apache` in `make test-kafka`), as a newcomer runs it: the banner's export line works
from a second shell, a change goes through, Ctrl-C stops everything with exit 0, and `--reset` starts over."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

from service.devkit.embedded import scratch_dir
from tests.helpers.brokers import BROKER
from tests.helpers.cli import ok, run_cli_async, start_cli
from tests.helpers.probes import readiness
from tests.helpers.waiting import wait_until

ENGINE = "apache" if BROKER == "apache" else "embedded"
CHANGE = {"type": "ChangeOrderStatus", "order_id": 1029, "status": 21,
          "actor": {"id": "u-7", "role": "client", "client_id": "c-1"}}


class DevStack:
    """`orderstatus dev` as a subprocess, its output in a file."""

    def __init__(self, data_dir, *args: str) -> None:
        self.out = scratch_dir("orderstatus-dev-out-") / "dev.out"
        self.file = open(self.out, "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSTATUS_")}
        self.proc = start_cli(env, "dev", "--broker", ENGINE, "--data-dir", str(data_dir), *args,
                              stdout=self.file, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    async def up(self) -> dict[str, str]:
        """Until the banner is printed; the environment its `export` line gives a second shell."""
        def banner():
            assert self.proc.poll() is None, f"orderstatus dev exited with {self.proc.returncode}:\n{self.text()}"
            return "Ctrl-C stops everything" in self.text()

        await wait_until(banner, 120, "the dev banner")
        exports = next(line for line in self.text().splitlines() if "ORDERSTATUS_DATABASE_URL=" in line)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERSTATUS_")}
        env.update(dict(pair.split("=", 1) for pair in exports.split()[1:]))
        env["HTTP_PORT"] = re.search(r"worker\s+http://127\.0\.0\.1:(\d+)/readyz", self.text()).group(1)
        return env

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(90)
        self.file.close()
        return code


async def worker_ready(port: int) -> bool:
    """/readyz says ready; False while the worker's HTTP server is not listening yet."""
    try:
        status, _ = await readiness(port)
    except OSError:  # aiohttp's connection errors are OSErrors
        return False
    return status == 200


async def changed_to(env: dict[str, str], order_id: int) -> list:
    """The statuses the order was changed to, oldest first, as `orderstatus history` prints them."""
    printed = json.loads(ok(await run_cli_async(env, "history", str(order_id))).stdout)
    return [entry["to_status"]["id"] for entry in printed["history"]]


async def test_dev_stack_applies_a_change_stops_on_ctrl_c_and_reset_starts_over():
    """On the suite's engine: a change sent from a second shell applies; Ctrl-C exits 0; a restart keeps the
    history; `--reset` starts from empty data again."""
    data_dir = scratch_dir("orderstatus-dev-data-")
    first = DevStack(data_dir, "--reset")
    try:
        env = await first.up()
        assert ("Apache Kafka" if ENGINE == "apache" else "tansu") in first.text()
        await wait_until(lambda: worker_ready(int(env["HTTP_PORT"])), 60, "the dev worker's readiness")
        sent = await run_cli_async(env, "send", "--wait", "--timeout", "60", json.dumps(CHANGE))
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "OrderStatusChanged" in sent.stdout
        assert await changed_to(env, 1029) == [21]
    finally:
        assert first.interrupt() == 0, first.text()
    assert "orderstatus dev stopped" in first.text()

    again = DevStack(data_dir)
    try:
        env = await again.up()
        assert await changed_to(env, 1029) == [21], "history lost"
    finally:
        assert again.interrupt() == 0, again.text()

    fresh = DevStack(data_dir, "--reset")
    try:
        env = await fresh.up()
        assert await changed_to(env, 1029) == [], "--reset kept the old history"
    finally:
        assert fresh.interrupt() == 0, fresh.text()
