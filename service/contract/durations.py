"""Durations an operator types (`prune --older-than`, `topics create --retention`, `tokens issue --ttl`):
one reading for every command."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*$")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 86400}


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `3600s`, `1.5d`, `2 h`; a bare number is days. ValueError when not a positive one."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"not a positive duration like 30d, 12h, 90m or 3600s: {text!r}")
    return timedelta(seconds=float(match.group(1)) * _SECONDS[match.group(2)])
