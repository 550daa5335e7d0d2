"""The processes under measurement, always real subprocesses: `orderstatus worker` (whatever it does
today) or the naive baseline (`python -m bench.naive`), run by the kit the tests use (testkit.processes).
Each logs to a file in the scenario's scratch folder; the tail of that log is shown when one dies."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from service.adapters.kafka.admin import group_state
from service.runtime.settings import Settings
from testkit.processes import LoggedProcess

WORKER = [sys.executable, "-m", "service.entrypoints.cli", "worker"]
NAIVE = [sys.executable, "-m", "bench.naive"]


class Process(LoggedProcess):
    """A measured process in its own session (a signal to the bench never reaches it by accident)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        super().__init__(argv, env, log_path, start_new_session=True)


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
