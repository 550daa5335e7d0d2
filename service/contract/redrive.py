"""Redriven dead letters on the wire (DESIGN §11): the headers a redrive adds to a command it sends
back, and how the worker reads them.

A redrive sends a dead letter's original key and value back to its `original.topic` with
`redrive.count` (how often this message has been redriven, the previous count + 1) and
`redrive.dlq-offset` / `redrive.dlq-partition` (where in the DLQ it was taken from). The original's
other headers travel with it (an `actor-token`, a `traceparent`); the DLQ's own `error.*` /
`original.*` headers and any earlier `redrive.*` headers do not."""

from __future__ import annotations

from dataclasses import dataclass

from service.contract.headers import Header, Headers

COUNT = "redrive.count"
DLQ_OFFSET = "redrive.dlq-offset"
DLQ_PARTITION = "redrive.dlq-partition"

@dataclass(frozen=True)
class Redrive:
    """What a redriven command says about itself."""

    count: int
    dlq_partition: int
    dlq_offset: int

    def key(self, dlq_topic: str) -> str:
        """The worker's dedupe key of this redrive: one DLQ record is redriven into effect at most once,
        however often the redrive is sent or the commands topic replayed. `@` keeps it apart from
        command ids (they may not start with it)."""
        return f"@redrive:{dlq_topic}:{self.dlq_partition}:{self.dlq_offset}"


def _number(value: bytes | None) -> int | None:
    try:
        number = int((value or b"").decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return number if 0 <= number < 2**63 else None


def read_redrive(headers: Headers) -> Redrive | None:
    """The redrive a message's headers describe; None for a message that is no redrive (or whose redrive
    headers are unreadable: it is then an ordinary message, and a command id recorded before stays a
    duplicate)."""
    found = {name: value for name, value in headers if name in (COUNT, DLQ_OFFSET, DLQ_PARTITION)}
    if DLQ_OFFSET not in found:
        return None
    offset = _number(found[DLQ_OFFSET])
    partition = _number(found.get(DLQ_PARTITION, b"0"))
    count = _number(found.get(COUNT, b"1"))
    if offset is None or partition is None or count is None:
        return None
    return Redrive(count=count, dlq_partition=partition, dlq_offset=offset)


def _is_bookkeeping(name: str) -> bool:
    return name.startswith(("error.", "original.", "redrive."))


def redrive_headers(dead_letter_headers: Headers, dlq_partition: int, dlq_offset: int) -> list[Header]:
    """The headers of the redriven copy of a dead letter: the original's own headers, then the redrive's."""
    previous = read_count(dead_letter_headers)
    kept = [(name, value) for name, value in dead_letter_headers if not _is_bookkeeping(name)]
    return kept + [
        (COUNT, str(previous + 1).encode()),
        (DLQ_OFFSET, str(dlq_offset).encode()),
        (DLQ_PARTITION, str(dlq_partition).encode()),
    ]


def read_count(headers: Headers) -> int:
    """How often the message had been redriven (0 when never, or when the header is unreadable)."""
    for name, value in headers:
        if name == COUNT:
            return _number(value) or 0
    return 0


def why_unredrivable(original_topic: str | None, truncated: bool, reason: str | None) -> str | None:
    """Why a dead letter cannot be redriven, from what its headers say; None when it can. One rule for
    `dlq redrive` (which reads the record) and the console's preview (which reads the dead-letter index)."""
    if original_topic is None:
        return "no original.topic header: not a dead letter of the worker"
    if truncated:
        return "cut to fit the DLQ (error.truncated): the original bytes are lost"
    if reason == "unreadable":
        return ("its record batch could not be decompressed (error.reason unreadable): the DLQ holds none of its "
                "bytes; they are still on the original topic until its retention removes them")
    return None
