"""`orderstatus dev` as a newcomer runs it, for the tests: a subprocess on the suite's engine with its output in a
file, the banner waited for, its `export` block read into an environment, its ports and its Ctrl-C."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

from service.devkit.embedded import scratch_dir
from tests.helpers.brokers import BROKER
from tests.helpers.cli import start_cli
from tests.helpers.waiting import wait_until

ENGINE = "apache" if BROKER == "apache" else "embedded"
BANNER_PORTS = {"PostgreSQL": r"PostgreSQL\s+postgresql://\S+@127\.0\.0\.1:(\d+)/", "Kafka": r"Kafka\s+127\.0\.0\.1:(\d+)",
                "SMTP": r"SMTP sink\s+127\.0\.0\.1:(\d+)", "worker": r"worker\s+http://127\.0\.0\.1:(\d+)",
                "notifier": r"notifier\s+http://127\.0\.0\.1:(\d+)", "gateway": r"gateway\s+http://127\.0\.0\.1:(\d+)"}


def clean_env() -> dict[str, str]:
    """A second shell's environment before the exports: nothing of the suite's own settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ORDERSTATUS_")}


class DevStack:
    """`orderstatus dev` as a subprocess, its output in a file; `settings` are more `ORDERSTATUS_…` variables
    in its environment (the dev stack hands its environment on to the processes it starts)."""

    def __init__(self, data_dir, *args: str, settings: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.out = scratch_dir("orderstatus-dev-out-") / "dev.out"
        self.file = open(self.out, "wb")
        self.proc = start_cli({**clean_env(), **(settings or {})}, "dev", "--broker", ENGINE, "--data-dir", str(data_dir), *args,
                              stdout=self.file, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    async def up(self) -> dict[str, str]:
        """Until the banner is printed; the environment its `export` block gives a second shell."""
        def banner():
            assert self.proc.poll() is None, f"orderstatus dev exited with {self.proc.returncode}:\n{self.text()}"
            return "Ctrl-C stops everything" in self.text()

        await wait_until(banner, 180, "the dev banner")
        env = clean_env()
        for name, value in (shlex.split(line)[1].split("=", 1) for line in self.exports().splitlines()):
            env[name] = value
        env["HTTP_PORT"] = re.search(BANNER_PORTS["worker"], self.text()).group(1)
        return env

    def exports(self) -> str:
        """The banner's `export` lines, as a user copies them."""
        return "\n".join(line.strip() for line in self.text().splitlines() if line.startswith("  export "))

    def ports(self) -> dict[str, int]:
        """Where the banner says each part listens."""
        found = {name: re.search(pattern, self.text()) for name, pattern in BANNER_PORTS.items()}
        missing = [name for name, match in found.items() if match is None]
        assert not missing, f"the banner does not list {missing}:\n{self.text()}"
        return {name: int(match.group(1)) for name, match in found.items()}

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(90)
        self.file.close()
        return code

    def interrupt(self) -> int:
        return self.stop(signal.SIGINT)
