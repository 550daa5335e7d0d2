"""`orderstatus events tail` and `orderstatus send --wait`: outcome events read back for an operator.

Events come from a topic anyone may write to, so every field is printed escaped (`printing`)."""

from __future__ import annotations

import json

from service.contract.outcome import Outcome
from service.ops.printing import printable_text

# exit codes of `send --wait`
APPLIED, REJECTED, TIMED_OUT = 0, 3, 4


def _field(event: dict, name: str, default: str = "-") -> str:
    value = event.get(name)
    return default if value is None else printable_text(value, 200)


def _status(value) -> str:
    if isinstance(value, dict):
        return printable_text(value.get("code") or value.get("id") or "?", 100)
    return "-" if value is None else printable_text(value, 100)


def _actor(value) -> str:
    if not isinstance(value, dict):
        return "-"
    who = f"{printable_text(value.get('role') or '?', 20)} {printable_text(value.get('id') or '?', 200)}"
    return who + (f" (client {printable_text(value['client_id'], 200)})" if value.get("client_id") else "")


def describe(event: dict) -> str:
    """One readable line per event: when, what, which order, the change or the reason, who, which command."""
    kind = event.get("type")
    when = _field(event, "occurred_at")
    command = f"[command {_field(event, 'command_id')}]"
    if kind == "OrderStatusChanged":
        how = " (override)" if event.get("override") else ""
        return (f"{when} OrderStatusChanged order {_field(event, 'order_id')} v{_field(event, 'version')}: "
                f"{_status(event.get('from_status'))} -> {_status(event.get('to_status'))}{how} "
                f"by {_actor(event.get('actor'))} {command}")
    if kind == "OrderStatusChangeRejected":
        return (f"{when} OrderStatusChangeRejected order {_field(event, 'order_id')}: "
                f"{_status(event.get('requested_status'))} refused, {_field(event, 'reason')}: "
                f"{_field(event, 'message')} {command}")
    if kind == "OrderStatusOverrideCompleted":
        results = event.get("results") if isinstance(event.get("results"), list) else []
        succeeded = sum(1 for r in results if isinstance(r, dict) and r.get("success") is True)
        total = event.get("item_count") if isinstance(event.get("item_count"), int) else len(results)
        refused = f", refused whole: {_field(event, 'reason')}" if event.get("reason") else ""
        return f"{when} OrderStatusOverrideCompleted: {succeeded}/{total} items applied{refused} {command}"
    return f"{when} {printable_text(kind if kind is not None else '(no type)', 100)} " \
           f"{printable_text(json.dumps(event, sort_keys=True), 500)}"


def concerns(event: dict, order_id: int | None, event_type: str | None) -> bool:
    """Whether `events tail --order-id/--type` shows the event (a batch summary concerns each item's order)."""
    if event_type is not None and event.get("type") != event_type:
        return False
    if order_id is None:
        return True
    if event.get("order_id") == order_id:
        return True
    results = event.get("results")
    return isinstance(results, list) and any(isinstance(r, dict) and r.get("order_id") == order_id for r in results)


EXIT_CODES = {"applied": APPLIED, "rejected": REJECTED, "timeout": TIMED_OUT}


def exit_code(outcomes: list[Outcome]) -> int:
    """4 if any command timed out, else 3 if any was rejected (wholly or in part), else 0 (`Outcome.verdict`)."""
    codes = {EXIT_CODES[o.verdict] for o in outcomes}
    return TIMED_OUT if TIMED_OUT in codes else REJECTED if REJECTED in codes else APPLIED


def outcome_lines(found: Outcome) -> list[str]:
    """`send --wait` on a terminal: one human line per outcome — `applied: order 1029 Confirmed -> Cancelled v3`,
    `rejected: transition_not_allowed — <message>`, a batch's items one line each, or the timeout."""
    if found.verdict == "timeout" and not found.events:
        return [f"timed out: no outcome for command {printable_text(found.command_id, 200)} yet"]
    lines = []
    for event in found.events:
        kind = event.get("type")
        if kind == "OrderStatusChanged":
            how = " (override)" if event.get("override") else ""
            lines.append(f"applied: order {_field(event, 'order_id')} {_status(event.get('from_status'))} -> "
                         f"{_status(event.get('to_status'))} v{_field(event, 'version')}{how}")
        elif kind == "OrderStatusChangeRejected":
            order = f" (order {_field(event, 'order_id')})" if event.get("order_id") is not None else ""
            lines.append(f"rejected: {_field(event, 'reason')} — {_field(event, 'message')}{order}")
        elif kind == "OrderStatusOverrideCompleted":
            if event.get("reason"):
                lines.append(f"rejected: {_field(event, 'reason')} — the whole batch was refused")
            for item in event.get("results") if isinstance(event.get("results"), list) else []:
                if not isinstance(item, dict):
                    continue
                if item.get("success") is True:
                    lines.append(f"applied: order {_field(item, 'order_id')} -> {_status(item.get('status'))}")
                else:
                    lines.append(f"rejected: {_field(item, 'reason')} — order {_field(item, 'order_id')} -> "
                                 f"{_status(item.get('status'))}" + (f": {_field(item, 'error')}"
                                                                     if item.get("error") else ""))
        else:
            lines.append(describe(event))
    if found.verdict == "timeout":
        lines.append(f"timed out: no final outcome for command {printable_text(found.command_id, 200)}")
    return lines
