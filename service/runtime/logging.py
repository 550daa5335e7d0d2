"""structlog set-up, done once by an entrypoint: JSON lines when not a TTY, pretty console when it is."""

from __future__ import annotations

import logging
import re
import sys

import structlog


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SECRET_KEYS = ("token", "authorization", "password")


def redact(_logger, _method, event: dict) -> dict:
    """No credential reaches a log line (issue 23): fields named like a token, a password or an Authorization
    header, an `actor-token` among logged Kafka headers, and anything shaped like a JWT are replaced."""
    for key, value in event.items():
        if any(word in key.lower() for word in _SECRET_KEYS) and value is not None:
            event[key] = "(redacted)"
        elif isinstance(value, str) and "eyJ" in value:
            event[key] = _JWT.sub("(redacted token)", value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(h, tuple) and len(h) == 2 for h in value):
            event[key] = [(n, "(redacted)") if isinstance(n, str) and any(w in n.lower() for w in _SECRET_KEYS)
                          else (n, v) for n, v in value]
    return event


def configure_logging(level: str = "INFO", *, json: bool | None = None) -> None:
    """Route structlog and stdlib logging to stderr; bind per-message context with contextvars."""
    if json is None:
        json = not sys.stderr.isatty()
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
