"""What one caller may take of a gateway replica (issue 23, item 5): request bodies capped per route before
anything is parsed and read within a deadline, and requests in flight capped per replica and per principal
(429 with Retry-After), so no single caller exhausts the replica's memory or its workers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

# a Wordbee/Brightpearl change is a few fields: 16 KiB is generous
CHANGE_BODY_MAX = 16 * 1024
# a StoreFeeder item is ~60 bytes of JSON (~200 of XML): this many bytes per item the route reads at most
OVERRIDE_BYTES_PER_ITEM = 512
RETRY_AFTER_S = 1


class Limited(Exception):
    """Refused for a limit, before any work: the status, the reason, the message (and Retry-After on 429)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(RETRY_AFTER_S)} if self.status == 429 else {}


def override_body_max(max_wire_items: int, max_message_bytes: int) -> int:
    """The StoreFeeder route's body cap: enough for `max_wire_items` items, never above the message cap."""
    return min(max_message_bytes, 1024 + max_wire_items * OVERRIDE_BYTES_PER_ITEM)


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The body, at most `limit` bytes (413 beyond, by Content-Length before reading or while reading), read within
    `timeout_s` (408 for a body that trickles in)."""
    if request.content_length is not None and request.content_length > limit:
        raise Limited(413, "body_too_large", f"the body is larger than this route reads ({limit} bytes)")
    chunks, size = [], 0

    async def read() -> None:
        nonlocal size
        while True:
            chunk = await request.content.read(min(65536, limit + 1 - size))
            if not chunk:
                return
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise Limited(413, "body_too_large", f"the body is larger than this route reads ({limit} bytes)")

    try:
        await asyncio.wait_for(read(), timeout_s)
    except asyncio.TimeoutError:
        raise Limited(408, "body_timeout", f"the body was not received within {timeout_s:g} s") from None
    return b"".join(chunks)


@dataclass
class InFlight:
    """Requests in flight on this replica, in all and per principal."""

    per_replica: int
    per_principal: int
    total: int = 0
    by_principal: dict[str, int] = field(default_factory=dict)

    def enter(self) -> None:
        if self.total >= self.per_replica:
            raise Limited(429, "too_many_requests", "this gateway replica is at its limit of requests in flight; "
                                                    f"retry after {RETRY_AFTER_S} s")
        self.total += 1

    def leave(self) -> None:
        self.total -= 1

    def enter_principal(self, principal: str) -> None:
        held = self.by_principal.get(principal, 0)
        if held >= self.per_principal:
            raise Limited(429, "too_many_requests", f"at most {self.per_principal} requests of one caller are served "
                                                    f"at a time; retry after {RETRY_AFTER_S} s")
        self.by_principal[principal] = held + 1

    def leave_principal(self, principal: str) -> None:
        held = self.by_principal.get(principal, 0) - 1
        if held > 0:
            self.by_principal[principal] = held
        else:
            self.by_principal.pop(principal, None)
