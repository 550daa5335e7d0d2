"""What the generators of the contract files (JSON Schemas, AsyncAPI, OpenAPI) share."""

from __future__ import annotations

from pathlib import Path


def shown(path: Path) -> str:
    """A path as an operator reads it: relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
