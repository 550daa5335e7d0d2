"""Process plumbing: SIGTERM/SIGINT turned into a clean stop."""

from __future__ import annotations

import asyncio
import gc
import signal


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT ask for a clean stop: the in-flight batch is finished and committed first."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def run_until_signalled(run_service, *args) -> int:
    """A process entrypoint: run `run_service(*args, stop)` until SIGTERM/SIGINT set `stop`."""

    async def run() -> int:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        return await run_service(*args, stop)

    # what the imports built lives as long as the process: frozen out of the collector's sight, a full
    # collection walks only what the service made since (else 30–90 ms pauses of the worker, measured)
    gc.collect()
    gc.freeze()
    return asyncio.run(run())
