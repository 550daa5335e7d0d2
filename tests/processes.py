"""Helpers for tests that run `orderstatus worker|notifier` as real subprocesses and break things."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from service.embedded import scratch_dir

REPO = Path(__file__).resolve().parents[1]


async def wait_until(probe, timeout: float, what: str, interval: float = 0.05):
    """Await `probe()` until it returns something truthy; fail loudly at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def readiness(port: int) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
            return response.status, await response.json()


async def wait_readiness(port: int, ready: bool, timeout: float, **detail) -> dict:
    """Until /readyz says `ready` (and its detail has the given values)."""
    seen: list = []

    async def probe():
        status, body = await readiness(port)
        seen[:] = [status, body]
        return (status == 200) == ready and all(body.get(k) == v for k, v in detail.items())

    try:
        await wait_until(probe, timeout, f"/readyz ready={ready} {detail}", interval=0.1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer {seen}") from None
    return seen[1]


def fast_group_env(env: dict[str, str]) -> dict[str, str]:
    """A shorter session so the group notices a kill -9'd member sooner (the broker default is 10 s)."""
    return {**env, "ORDERSTATUS_KAFKA_SESSION_TIMEOUT_MS": "6000", "ORDERSTATUS_KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}


class ServiceProcess:
    """`python -m service.entrypoints.cli <command>` as a real subprocess, its JSON log in a file."""

    def __init__(self, command: str, env: dict[str, str], name: str) -> None:
        self.command = command
        self.log_path = scratch_dir(f"orderstatus-{name}-") / f"{command}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "service.entrypoints.cli", command], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    async def wait_assigned(self, timeout: float = 45.0) -> None:
        """Until the process's consumer owns at least one partition."""

        async def probe():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.command} exited with {self.proc.returncode}:\n{self.tail()}")
            return any(line.get("event") == "partitions assigned" and line.get("partitions")
                       for line in self.log_lines())

        try:
            await wait_until(probe, timeout, f"the {self.command} to be assigned partitions", interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"{self.command} did not exit within {timeout:.0f}s of SIGTERM:\n{self.tail()}")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
