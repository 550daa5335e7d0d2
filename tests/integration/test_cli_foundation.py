"""Foundation commands against the real embedded Postgres and broker."""

from __future__ import annotations

import subprocess
import sys

import asyncpg


def run_cli(env, *args, input=None):
    return subprocess.run(
        [sys.executable, "-m", "service.entrypoints.cli", *args],
        env=env, input=input, capture_output=True, text=True, timeout=120,
    )


def test_migrate_twice(cli_env):
    """Running migrate on an up-to-date database succeeds and changes nothing."""
    first = run_cli(cli_env, "migrate")
    second = run_cli(cli_env, "migrate")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
