"""deploy/kafka-acls.sh read as data: which principal the script allows which operation on which topic or group.

The static deploy test checks these grants against what each process does; the Apache Kafka security suite
creates them on a real broker (with the test's own topic and group names) and runs the processes under them, so
the script is exercised as written rather than through a copy of its table."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka-acls.sh"


@dataclass(frozen=True)
class Grant:
    principal: str  # the user name, without "User:"
    operation: str  # as kafka-acls.sh spells it: Read, Write, Describe, …
    kind: str  # "topic" or "group"
    name: str
    line: str  # the script's line, for messages


def script_grants(path: Path = SCRIPT) -> list[Grant]:
    """Every `acl …` line of the script, in order (the script's `acl` function adds one ACL per line)."""
    grants = []
    for line in path.read_text().splitlines():
        if not line.startswith("acl "):
            continue
        words = shlex.split(line)
        principal = words[words.index("--allow-principal") + 1].removeprefix("User:")
        operation = words[words.index("--operation") + 1]
        kind = "topic" if "--topic" in words else "group"
        grants.append(Grant(principal, operation, kind, words[words.index(f"--{kind}") + 1], line))
    return grants
