"""Every generated contract file in one registry, written or checked by one command.

    python -m tools.contract            write every file below schemas/ that differs (and drop stray generated ones)
    python -m tools.contract --check    exit 1, with one line naming each stale, missing or stray file

The files are a contract other teams read (JSON Schemas of the wire messages, the AsyncAPI document of the
topics, the OpenAPI document of the HTTP faces), so they are committed and a test fails when one is stale.
The generators are build tools, not part of the running service: they live here, outside the `service`
package and its wheel, and import from `service` only what the service itself uses (the pydantic wire
models, and the OpenAPI document that the gateway also serves at `/openapi.json`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.contract.openapi import openapi_document
from tools.contract import asyncapi, json_schemas

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "schemas"
COMMAND = "python -m tools.contract"


@dataclass(frozen=True)
class Generator:
    """One family of generated files: what it renders, and the globs of files it owns (to find stray ones)."""

    name: str
    render: Callable[[], dict[str, str]]  # relative path -> text, deterministic
    owns: tuple[str, ...]


def _openapi() -> dict[str, str]:
    return {"openapi.json": json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"}


GENERATORS = (
    Generator("JSON Schemas", json_schemas.render_all, (f"commands/*{json_schemas.SUFFIX}",
                                                        f"events/*{json_schemas.SUFFIX}")),
    Generator("AsyncAPI", lambda: {asyncapi.FILENAME: asyncapi.render()}, (asyncapi.FILENAME,)),
    Generator("OpenAPI", _openapi, ("openapi.json",)),
)


def render_all() -> dict[str, str]:
    """Relative path (below schemas/) -> text of every generated file."""
    files: dict[str, str] = {}
    for generator in GENERATORS:
        files.update(generator.render())
    return files


def stale_files(directory: Path, expected: dict[str, str] | None = None) -> list[str]:
    """Relative paths that are missing, different, or a generated kind of file no generator produces any more."""
    expected = render_all() if expected is None else expected
    stale = {rel for rel, text in expected.items()
             if not (directory / rel).is_file() or (directory / rel).read_text(encoding="utf-8") != text}
    for generator in GENERATORS:
        for pattern in generator.owns:
            stale.update(rel for path in directory.glob(pattern)
                         if (rel := path.relative_to(directory).as_posix()) not in expected)
    return sorted(stale)


def write_all(directory: Path, expected: dict[str, str] | None = None) -> list[str]:
    """Write what differs and delete stray generated files; returns the relative paths that changed."""
    expected = render_all() if expected is None else expected
    changed = stale_files(directory, expected)
    for rel in changed:
        path = directory / rel
        if rel in expected:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(expected[rel], encoding="utf-8")
        else:
            path.unlink()
    return changed


def shown(path: Path) -> str:
    """A path as an operator reads it: relative to the working directory when it is below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if any generated file is stale")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"schemas directory (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    try:
        expected = render_all()
    except ValueError as exc:  # the AsyncAPI generator refuses payload schemas it cannot declare as draft-07
        print(f"cannot generate the contract files: {exc}", file=sys.stderr)
        return 1
    where = shown(args.dir)
    if args.check:
        stale = stale_files(args.dir, expected)
        if stale:
            names = ", ".join(shown(args.dir / rel) for rel in stale)
            print(f"stale contract files (run `{COMMAND}`, i.e. `make schemas`): {names}", file=sys.stderr)
            return 1
        print(f"{len(expected)} contract files in {where} are up to date")
        return 0
    changed = write_all(args.dir, expected)
    print(f"wrote {len(changed)} of {len(expected)} contract files in {where}"
          + (f": {', '.join(changed)}" if changed else ""))
    return 0
