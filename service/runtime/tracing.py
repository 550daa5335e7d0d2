"""Tracing (DESIGN §11): W3C `traceparent` carried from a command to its events, dead letters and
emails, and OpenTelemetry spans for the batch, the transaction, each command, the publish and the
SMTP send.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard variable; the OTLP/HTTP exporter reads
the other standard `OTEL_*` variables itself): then every command gets a span, a child of the
command's own `traceparent` when it has one, else the root of a new trace. When off, a command's
`traceparent` still travels unchanged to its events and emails, and nothing is started."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import ContextManager

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
_VALID = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_PROPAGATOR = TraceContextTextMapPropagator()
_tracer = None  # set by `configure` (entrypoints) or `use` (tests); None: tracing is off


def configure(service_name: str) -> bool:
    """Turn tracing on for this process when OTEL_EXPORTER_OTLP_ENDPOINT is set; returns whether it is."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"orderstatus-{service_name}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    use(provider)
    return True


def use(provider: TracerProvider | None) -> None:
    """Trace through `provider` (tests pass one with an in-memory exporter); None turns tracing off."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer("orderstatus")


def traceparent_of(headers) -> str | None:
    """A well-formed W3C traceparent among Kafka headers (the last one wins), or None."""
    found = None
    for name, value in headers or ():
        if name == TRACEPARENT and isinstance(value, (bytes, bytearray)):
            text = bytes(value).decode("ascii", "replace").strip()
            found = text if _VALID.match(text) else found
    return found


def span(name: str, parent: str | None = None, **attributes) -> ContextManager[str | None]:
    """A span named `name`, child of `parent` (a traceparent) or of the current span; yields the
    traceparent to hand on. With tracing off it starts nothing and yields `parent` as it came (cheaply:
    the worker opens one per command)."""
    if _tracer is None:
        return contextlib.nullcontext(parent)
    return _span(name, parent, attributes)


@contextlib.contextmanager
def _span(name: str, parent: str | None, attributes: dict) -> Iterator[str | None]:
    context = _PROPAGATOR.extract({TRACEPARENT: parent}) if parent else None
    clean = {k: v for k, v in attributes.items() if isinstance(v, (str, int, float, bool))}
    with _tracer.start_as_current_span(name, context=context, attributes=clean):
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        yield carrier.get(TRACEPARENT)
