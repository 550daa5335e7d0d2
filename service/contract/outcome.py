"""What a command's outcome events mean (DESIGN §6.1, §11): the one typed model of a command's outcome.

Whoever waits for a command — the gateway's request-reply, `orderstatus send --wait`, a retried request
answered from Postgres — collects its events into an `Outcome` and asks it, never the raw dicts:

* `ends(command_type, event)` / `Outcome.add` — whether an event is the command's last: a
  `ChangeOrderStatus` has exactly one event; an `OverrideOrderStatuses` ends with its
  `OrderStatusOverrideCompleted` summary, unless it was not even a valid command (one `invalid_command`
  rejection, no summary).
* `Outcome.verdict` — applied (every change happened: the change event, or a summary with every item
  successful), rejected (any rejection event, a batch refused whole, one failed item) or timeout (no final
  event yet, whatever was seen before).
* `Outcome.refusal()` — the command refused as a whole, with its reason and message (None: it was
  answered item by item, or applied): a change's one event when it is not `OrderStatusChanged`; a batch
  without a summary, or whose summary has a reason, by its first rejection (else the summary).
* `Outcome.item_results()` — a batch's summary, item by item in item order.

Events come from a topic, so reading them is total: an odd field reads as missing, never raises."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from service.domain.events import OverrideResult

CHANGED = "OrderStatusChanged"
REJECTED = "OrderStatusChangeRejected"
COMPLETED = "OrderStatusOverrideCompleted"
OVERRIDE = "OverrideOrderStatuses"
INVALID_COMMAND = "invalid_command"

Verdict = Literal["applied", "rejected", "timeout"]


def ends(command_type: str | None, event: Mapping) -> bool:
    """Whether `event` is the last one its command (of `command_type`) produces."""
    if event.get("type") == COMPLETED or event.get("reason") == INVALID_COMMAND:
        return True
    return command_type != OVERRIDE


@dataclass(frozen=True)
class Refusal:
    """A command refused as a whole: the reason code (DESIGN §6.1) and the message, as the events said them."""

    reason: str
    message: str


@dataclass
class Outcome:
    """The events of one command seen so far, in arrival order (as read: raw JSON objects, for printing and
    answering), and `final` once its last event arrived."""

    command_id: str
    command_type: str | None = None
    events: list[dict] = field(default_factory=list)
    final: bool = False

    def add(self, event: dict) -> bool:
        """Take one more event of the command; True when it is the last one (then `final` is set)."""
        self.events.append(event)
        if ends(self.command_type, event):
            self.final = True
        return self.final

    @property
    def verdict(self) -> Verdict:
        if not self.final:
            return "timeout"
        if any(e.get("type") == REJECTED for e in self.events):
            return "rejected"
        if any(e.get("type") == COMPLETED and (e.get("reason") or not _all_succeeded(e.get("results")))
               for e in self.events):
            return "rejected"
        return "applied"

    def summary(self) -> dict | None:
        """The batch's summary event (it may arrive before or after its items: they are on other partitions)."""
        return next((e for e in self.events if e.get("type") == COMPLETED), None)

    def refusal(self) -> Refusal | None:
        """The command refused as a whole (see the module docstring); None when there are no events yet."""
        if not self.events:
            return None
        if self.command_type == OVERRIDE:
            summary = self.summary() or self.events[-1]
            if summary.get("type") == COMPLETED and not summary.get("reason"):
                return None
            first = next((e for e in self.events if e.get("type") == REJECTED), summary)
            return Refusal(str(first.get("reason") or summary.get("reason")), str(first.get("message")))
        first = self.events[0]
        if first.get("type") == CHANGED:
            return None
        return Refusal(str(first.get("reason")), str(first.get("message")))

    def item_results(self) -> list[OverrideResult]:
        """The summary's items in item order (empty without a summary), as the domain's `OverrideResult` (read
        as they are: an item that is not an object is skipped, `success` is true only when it says true)."""
        summary = self.summary()
        results = summary.get("results") if summary is not None else None
        if not isinstance(results, list):
            return []
        return [OverrideResult(order_id=r.get("order_id"), status=r.get("status"), success=r.get("success") is True,
                           reason=r.get("reason"), error=r.get("error"))
                for r in results if isinstance(r, Mapping)]


def _all_succeeded(results) -> bool:
    if not results:
        return True
    return isinstance(results, list) and all(isinstance(r, Mapping) and r.get("success") is True for r in results)
