"""A process the tests or the benchmark start and watch from outside: a real subprocess, its output in a
log file, stopped the way an operator would (SIGTERM, then SIGKILL after a grace period)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

from testkit.paths import REPO


class LoggedProcess:
    """`argv` as a subprocess of this repository's directory, stdout and stderr in `log_path`."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, **popen) -> None:
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, **popen)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def log_lines(self) -> list[dict]:
        """The log's JSON lines (structlog's output), skipping any that are not JSON."""
        lines = []
        for line in self.text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    def check_alive(self) -> None:
        """Raise, with the log's tail, when the process has exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"process {self.pid} exited with {self.proc.returncode}:\n{self.tail(20)}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (a worker drains its batch and relay), SIGKILL after `timeout`; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode

    def close(self) -> None:
        """Kill the process if it still runs, and close its log."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
