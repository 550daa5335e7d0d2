"""The one retry policy for every outage wait (tenacity): jittered exponential backoff while the
failure is an outage, for ever in the long-running processes, a few attempts in one-shot commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_never, wait_exponential_jitter

from service.runtime.faults import dependency_of, is_outage
from service.runtime.health import Progress
from service.runtime.metrics import Metrics

log = structlog.get_logger("orderstatus.retry")

class Stopping(Exception):
    """Raised out of a backoff sleep when the process was asked to stop: leave the work undone."""


def outage_retrying(initial: float, maximum: float, *, attempts: int | None = None, before_sleep=None,
                    sleep=None) -> AsyncRetrying:
    """Retry while the failure is an outage, with jittered exponential backoff from `initial` to `maximum`."""
    options = {"sleep": sleep} if sleep is not None else {}
    return AsyncRetrying(
        retry=retry_if_exception(is_outage),
        wait=wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial),
        stop=stop_never if attempts is None else stop_after_attempt(attempts),
        reraise=True,
        before_sleep=before_sleep,
        **options,
    )


class OutageRetry:
    """The policy of one process: logs and counts each wait and marks the process paused (not ready)."""

    def __init__(self, initial: float, maximum: float, metrics: Metrics, progress: Progress) -> None:
        self.initial = initial
        self.maximum = maximum
        self.metrics = metrics
        self.progress = progress

    def _before_sleep(self, dependency: str | None):
        def note(state) -> None:
            exc = state.outcome.exception() if state.outcome else None
            name = dependency or dependency_of(exc) or "unknown"
            self.metrics.outages.labels(self.metrics.service, name).inc()
            self.progress.paused_reason = f"{name}: {type(exc).__name__}"
            log.warning("outage, backing off", dependency=name, attempt=state.attempt_number, error=repr(exc),
                        sleep=round(state.upcoming_sleep, 2))

        return note

    def __call__(self, dependency: str | None = None, stop: asyncio.Event | None = None) -> AsyncRetrying:
        """Attempts for `async for attempt in retry(...)`; a set `stop` ends a backoff with `Stopping`."""

        async def sleep(seconds: float) -> None:
            if stop is None:
                await asyncio.sleep(seconds)
                return
            try:
                await asyncio.wait_for(stop.wait(), seconds)
            except asyncio.TimeoutError:
                return
            raise Stopping()

        return outage_retrying(self.initial, self.maximum, before_sleep=self._before_sleep(dependency), sleep=sleep)

    async def until_done(self, work: Callable[[], Awaitable[object]], stop: asyncio.Event) -> bool:
        """Run `work` until it succeeds, backing off through outages; False when asked to stop meanwhile.
        Any other failure propagates."""
        try:
            async for attempt in self(stop=stop):
                with attempt:
                    await work()
        except Stopping:
            return False
        self.resumed()
        return True

    def resumed(self) -> None:
        if self.progress.paused_reason is not None:
            log.info("resumed", after=self.progress.paused_reason)
        self.progress.paused_reason = None
