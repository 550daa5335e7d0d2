"""`orderstatus worker|notifier` as real subprocesses the tests can kill -9, SIGTERM and read the logs of."""

from __future__ import annotations

import signal

from service.devkit.embedded import scratch_dir
from testkit.processes import LoggedProcess
from tests.helpers.cli import cli_command
from tests.helpers.waiting import wait_until


def fast_group_env(env: dict[str, str]) -> dict[str, str]:
    """A shorter session so the group notices a kill -9'd member sooner (the broker default is 10 s)."""
    return {**env, "ORDERSTATUS_KAFKA_SESSION_TIMEOUT_MS": "6000", "ORDERSTATUS_KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}


class ServiceProcess(LoggedProcess):
    """`orderstatus <command>` as a real subprocess, its JSON log in a file (the shared kit's LoggedProcess)."""

    def __init__(self, command: str, env: dict[str, str], name: str) -> None:
        self.command = command
        super().__init__(cli_command(command), env, scratch_dir(f"orderstatus-{name}-") / f"{command}.log")

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

    async def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code (fails if the process does not exit within `timeout`)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            await wait_until(lambda: self.proc.poll() is not None, timeout, f"the {self.command} to exit on SIGTERM")
        except AssertionError as exc:
            self.proc.kill()
            raise AssertionError(f"{exc}:\n{self.tail()}") from None
        return self.proc.returncode
