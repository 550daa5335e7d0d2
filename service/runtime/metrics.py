"""Prometheus metrics of one process (prometheus-client)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    """One registry per process, so tests can run several services in one interpreter."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "orderstatus_messages_total", "Messages consumed, by outcome", ["service", "outcome"], registry=self.registry
        )
        self.batch_seconds = Histogram(
            "orderstatus_batch_seconds", "Time to make one poll batch durable", ["service"], registry=self.registry
        )
        self.published = Counter(
            "orderstatus_outbox_published_total", "Outbox messages published", ["service"], registry=self.registry
        )
        self.outages = Counter(
            "orderstatus_outage_retries_total", "Retries caused by infrastructure outages", ["service", "dependency"],
            registry=self.registry,
        )
        self.emails = Counter(
            "orderstatus_emails_total", "Emails by outcome", ["service", "outcome"], registry=self.registry
        )
        self.service = service
