"""Checks every wire and file model shares: text Postgres can store, and one-line validation errors."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StrictStr, ValidationError


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "text must not contain NUL characters (\\u0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text must be valid Unicode (no lone surrogates)"
    return None


def unstorable_problem(value: object) -> str | None:
    """Why Postgres text could not hold `value` (or any string inside it); None when it can."""
    if isinstance(value, str):
        return _text_problem(value)
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next((problem for item in items if (problem := unstorable_problem(item))), None)


def storable(value: str) -> str:
    """Refuse text Postgres cannot store, so it is an invalid input, not a failed transaction."""
    problem = _text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def is_storable_text(value: object) -> bool:
    return isinstance(value, str) and unstorable_problem(value) is None


Text = Annotated[StrictStr, AfterValidator(storable)]


def first_error(exc: ValidationError, *, whole: str, skip: int = 0) -> str:
    """`where: what` of the first error; `skip` drops leading location parts (a union's tag)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"][skip:]) or whole
    return f"{where}: {err['msg']}"
