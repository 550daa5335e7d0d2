"""One JSON parser for what arrives over the wire: pydantic-core's (the parser the worker's commands and
the database's JSON codec use), with the standard library's answer wherever the two disagree.

pydantic-core refuses some input `json.loads` reads: a byte-order mark, UTF-16/UTF-32, a lone surrogate
escape, nesting deeper than 200. Falling back to `json.loads` on a refusal keeps every input answered
exactly as before (value or ValueError/RecursionError, with the same message), so the fast parser changes
no outcome; malformed input is parsed twice, within the callers' size limits."""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import from_json


def parse_json(value: bytes | str) -> Any:
    """The JSON value of `value`, as `json.loads` reads it; ValueError or RecursionError when it is not JSON."""
    try:
        return from_json(value)
    except ValueError:
        return json.loads(value)
