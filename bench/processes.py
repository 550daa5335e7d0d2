"""The processes under measurement, always real subprocesses: `orderstatus worker` (whatever it does
today) or the naive baseline (`python -m bench.naive`). Each logs to a file in the scenario's scratch
folder; the tail of that log is shown when one dies."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

from service.adapters.kafka.admin import group_state
from service.runtime.settings import Settings

from bench.infra import ROOT

WORKER = [sys.executable, "-m", "service.entrypoints.cli", "worker"]
NAIVE = [sys.executable, "-m", "bench.naive"]


class Process:
    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"process {self.pid} exited with {self.proc.returncode}:\n{self.tail()}")

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the worker drains its batch and relay), SIGKILL after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def start(argv: list[str], count: int, env: dict[str, str], log_dir: Path) -> list[Process]:
    return [Process(argv, env, log_dir / f"{Path(argv[-1]).name}-{n}.log") for n in range(count)]


async def wait_group_stable(settings: Settings, group: str, members: int, processes: list[Process],
                            timeout: float = 120.0) -> float:
    """Until the coordinator reports the group Stable with `members` members; returns the seconds waited."""
    started = time.monotonic()
    state, seen = "Unknown", 0
    while time.monotonic() - started < timeout:
        for p in processes:
            p.check_alive()
        try:
            state, seen = await group_state(settings, group)
        except Exception:  # the coordinator may not know the group yet
            state, seen = "Unknown", 0
        if state == "Stable" and seen == members:
            return time.monotonic() - started
        await asyncio.sleep(0.25)
    raise TimeoutError(f"group {group} not Stable with {members} members after {timeout:.0f}s "
                       f"(last: {state}, {seen} members)")
