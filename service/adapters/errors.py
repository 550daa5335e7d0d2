"""Failures an adapter reports when a dependency cannot do its part right now (not the message's fault)."""

from __future__ import annotations


class Unavailable(Exception):
    """The dependency named by `dependency` cannot serve now: wait with backoff and retry the same work."""

    dependency = "unknown"
