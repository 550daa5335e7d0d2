"""The one way the tests run `orderstatus`: `python -m service.entrypoints.cli …` as a real subprocess,
as an operator would, plus the DESIGN §4 output contract (exit 0, or one line on stderr and exit 1)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def settings_env(settings) -> dict[str, str]:
    """The environment of `orderstatus` run with these settings: this process's, plus every setting as
    its `ORDERSTATUS_…` variable (secrets unwrapped, booleans as `true`/`false`)."""
    env = dict(os.environ)
    for key, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"ORDERSTATUS_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def cli_command(*args) -> list[str]:
    """The argv of `orderstatus ARGS…` run by this interpreter (paths and numbers become strings)."""
    return [sys.executable, "-m", "service.entrypoints.cli", *map(str, args)]


def run_cli(env: dict[str, str], *args, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a one-shot command to its end; stdout and stderr are captured as text."""
    return subprocess.run(cli_command(*args), env=env, input=input, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


async def run_cli_async(env: dict[str, str], *args, input: str | None = None,
                        timeout: float = 120) -> subprocess.CompletedProcess:
    """`run_cli` in a thread, so an in-process worker or notifier keeps running (and heartbeating) meanwhile."""
    return await asyncio.to_thread(run_cli, env, *args, input=input, timeout=timeout)


def start_cli(env: dict[str, str], *args, **popen) -> subprocess.Popen:
    """Start a command without waiting for it (a long-running process, or several at once)."""
    return subprocess.Popen(cli_command(*args), env=env, cwd=REPO, **popen)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert the command succeeded (exit 0); the failure message shows both streams."""
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def user_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Assert the DESIGN §4 error contract: exit 1, exactly one line on stderr containing every fragment,
    no traceback and nothing on stdout. Returns the line."""
    assert result.returncode == 1, (
        f"expected exit 1, got {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}")
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip("\n").splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert result.stdout == "", f"nothing expected on stdout, got: {result.stdout!r}"
    return lines[0]
