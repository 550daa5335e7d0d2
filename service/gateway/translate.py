"""The seed APIs in, our commands out; our events in, the seeds' answers out. Pure functions.

Status codes (DESIGN §11): applied 200; order_not_found 404; role_not_permitted and
override_not_allowed 403; no_change, stale_status, transition_not_allowed and cancel_* 409;
status_not_found, status_not_available, status_hidden and invalid_command 422; batch_too_large 413;
no or bad token 401."""

from __future__ import annotations

from service.contract.http import BrightpearlStatusChange, StoreFeederOverride, StoreFeederResult, WordbeeStatusChange
from service.contract.outcome import Outcome
from service.domain.model import Principal, Reason

STATUS_BY_REASON: dict[str, int] = {
    Reason.ORDER_NOT_FOUND: 404,
    Reason.ROLE_NOT_PERMITTED: 403,
    Reason.OVERRIDE_NOT_ALLOWED: 403,
    Reason.NO_CHANGE: 409,
    Reason.STALE_STATUS: 409,
    Reason.TRANSITION_NOT_ALLOWED: 409,
    Reason.CANCEL_HAS_GOODS_OUT_NOTES: 409,
    Reason.CANCEL_ORDER_INVOICED: 409,
    Reason.CANCEL_HAS_PAYMENTS: 409,
    Reason.STATUS_NOT_FOUND: 422,
    Reason.STATUS_NOT_AVAILABLE: 422,
    Reason.STATUS_HIDDEN: 422,
    Reason.INVALID_COMMAND: 422,
    Reason.BATCH_TOO_LARGE: 413,
    Reason.ACTOR_NOT_AUTHENTICATED: 401,
}


def _actor(principal: Principal) -> dict:
    # the actor is the caller's verified principal: nothing in the body names who acts
    return {"id": principal.sub, "role": principal.role, "client_id": principal.client_id}


def wordbee_command(order_id: int, body: WordbeeStatusChange, principal: Principal, command_id: str) -> dict:
    """Wordbee's `message` is shown in the email and the history, so it is a public note."""
    command = {"type": "ChangeOrderStatus", "command_id": command_id, "order_id": order_id, "status": body.status,
               "actor": _actor(principal), "notify": True if body.notify is None else body.notify}
    if body.message:
        command["note"] = {"text": body.message, "is_public": True}
    return command


def brightpearl_command(order_id: int, body: BrightpearlStatusChange, principal: Principal, command_id: str) -> dict:
    command = {"type": "ChangeOrderStatus", "command_id": command_id, "order_id": order_id,
               "status": body.orderStatusId, "actor": _actor(principal)}
    if body.orderNote is not None:
        note = body.orderNote
        command["note"] = {"text": note.text, "is_public": bool(note.isPublic), "file_id": note.fileId}
    return command


def storefeeder_command(items: list[StoreFeederOverride], principal: Principal, command_id: str) -> dict:
    return {"type": "OverrideOrderStatuses", "command_id": command_id, "actor": _actor(principal),
            "items": [{"order_id": i.OrderNumber, "status": i.OrderStatus} for i in items]}


def error(reason: str, message: str) -> dict:
    return {"reason": reason, "message": message}


def change_answer(outcome: Outcome) -> tuple[int, dict]:
    """A single change's final outcome in the seeds' shape: `{}` when applied, else the error body."""
    refusal = outcome.refusal()
    if refusal is None:
        return 200, {}
    return STATUS_BY_REASON.get(refusal.reason, 422), error(refusal.reason, refusal.message)


def override_answer(outcome: Outcome) -> tuple[int, list[StoreFeederResult] | dict]:
    """StoreFeeder's answer to a batch's final outcome: 200 with a result per item in item order (`Error` our
    message, `Reason` our code); a batch refused whole (too large, not authenticated, invalid) answers with
    its status."""
    refusal = outcome.refusal()
    if refusal is not None:
        return STATUS_BY_REASON.get(refusal.reason, 422), error(refusal.reason, refusal.message)
    return 200, [StoreFeederResult(OrderNumber=r.order_id, OrderStatus=r.status, Success=r.success, Error=r.error,
                                   Reason=r.reason)
                 for r in outcome.item_results()]
