"""Prometheus metrics of one process (prometheus-client)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
        self.relay_errors = Counter(
            "orderstatus_outbox_errors_total", "Outbox rows the broker refused, and relay failures, by error class",
            ["service", "error"], registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "orderstatus_outbox_unpublished", "Outbox rows not yet published (parked ones not counted)", ["service"],
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "orderstatus_outbox_oldest_unpublished_seconds", "Age of the oldest unpublished outbox row", ["service"],
            registry=self.registry,
        )
        self.outbox_parked = Gauge(
            "orderstatus_outbox_parked", "Outbox rows parked because the broker refused them for good", ["service"],
            registry=self.registry,
        )
        self.service = service
