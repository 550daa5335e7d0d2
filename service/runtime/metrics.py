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
        # issue 11: lag, outcomes by reason, end-to-end latency and readiness, for dashboards and alerts
        self.consumer_lag = Gauge(
            "orderstatus_consumer_lag", "Messages between the consumer's position and the partition's end",
            ["service", "topic", "partition"], registry=self.registry,
        )
        # issue 24: messages a consumer reads again because the database's position was behind Kafka's commit
        self.consumer_rewound = Counter(
            "orderstatus_consumer_rewound_total", "Messages to be processed again because the database's position "
            "was behind Kafka's committed offset at assignment (a failover lost commits)",
            ["service", "topic", "partition"], registry=self.registry,
        )
        self.redecided_conflicts = Counter(
            "orderstatus_redecided_conflicts_total", "Events decided again after a rewind whose content differs from "
            "the event of the same id already on the events topic (issue 24)", ["service"], registry=self.registry,
        )
        self.rejections = Counter(
            "orderstatus_rejections_total", "OrderStatusChangeRejected events emitted (override items and "
            "invalid_command included), by reason", ["service", "reason"], registry=self.registry,
        )
        self.dead_letters = Counter(
            "orderstatus_dead_letters_total", "Commands dead-lettered, by error.reason", ["service", "reason"],
            registry=self.registry,
        )
        self.end_to_end = Histogram(
            "orderstatus_end_to_end_seconds", "From a command's Kafka timestamp to its events acknowledged by the "
            "broker", ["service"], registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
        )
        self.ready = Gauge("orderstatus_ready", "1 when /readyz says ready, else 0", ["service"],
                           registry=self.registry)
        # DESIGN §12: every process's HTTP server counts its requests by route template (never the raw path: the
        # label set stays bounded) and status code, and times them
        self.http_requests = Counter(
            "orderstatus_http_requests_total", "HTTP requests served, by method, route template and status code",
            ["service", "method", "route", "status"], registry=self.registry,
        )
        self.http_seconds = Histogram(
            "orderstatus_http_request_seconds", "Time to answer one HTTP request, by method and route template",
            ["service", "method", "route"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        # issue 23: HTTP requests refused for their bearer token, by a bounded reason (health.AUTH_FAILURE_REASONS)
        self.auth_failures = Counter(
            "orderstatus_auth_failures_total", "HTTP requests refused authentication, by reason",
            ["service", "reason"], registry=self.registry,
        )
        self.service = service
