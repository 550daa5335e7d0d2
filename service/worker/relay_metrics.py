"""What the relay tells the world: the log lines and metrics of a round, the outbox gauges, the
relay's errors. Apart from the round itself (`service.worker.relay_round`), which only reports."""

from __future__ import annotations

import time

import structlog

from service.adapters.kafka.publishing import SENT
from service.domain.outbox import OutboxStats
from service.runtime.metrics import Metrics
from service.worker.relay_round import RoundReport

log = structlog.get_logger("orderstatus.outbox")


def record_round(report: RoundReport, metrics: Metrics | None) -> None:
    """Log each row parked for its own refusal (once, with its id) and the rows held behind parked rows;
    count published rows, the end-to-end latency of each and the refusals and outage by type."""
    if not report.sending and not report.held:
        return  # an empty round
    refused = report.refused
    for row, error in refused:
        log.error("outbox row parked: the broker refused it", outbox_id=row.id, topic=row.topic,
                  size=len(row.value), error=repr(error), retry=f"orderstatus outbox retry {row.id}")
    if report.held:
        log.warning("outbox rows held behind parked rows", rows=len(report.held),
                    behind=sorted(set(report.held.values())))
    if metrics is None:
        return
    metrics.published.labels(metrics.service).inc(report.published)
    acknowledged = time.time()  # the command's timestamp is wall-clock time too
    latency = metrics.end_to_end.labels(metrics.service)
    for row, result in zip(report.sending, report.results):
        if result == SENT and row.source_time is not None:
            latency.observe(max(acknowledged - row.source_time.timestamp(), 0.0))
    for _, error in refused:
        metrics.relay_errors.labels(metrics.service, type(error).__name__).inc()
    outage = report.outage
    if outage is not None:
        metrics.relay_errors.labels(metrics.service, type(outage).__name__).inc()


def record_stats(stats: OutboxStats, metrics: Metrics | None) -> None:
    """The outbox gauges: backlog, age of the oldest row still to publish, parked rows."""
    if metrics is not None:
        metrics.outbox_backlog.labels(metrics.service).set(stats.backlog)
        metrics.outbox_oldest_age.labels(metrics.service).set(stats.oldest_age_s or 0.0)
        metrics.outbox_parked.labels(metrics.service).set(stats.parked)


def record_error(error: BaseException, metrics: Metrics | None) -> None:
    """A failure of the relay's loop (retried after a pause)."""
    log.error("outbox publish failed; retrying", error=repr(error))
    if metrics is not None:
        metrics.relay_errors.labels(metrics.service, type(error).__name__).inc()
