"""Wire models of the HTTP faces (DESIGN §11): the three seed APIs the gateway serves, in their own
shapes, and the errors and command outcomes. The OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from service.contract.commands import BIGINT_MAX, INT_MAX
from service.contract.validation import Text

StatusId = Annotated[StrictInt, Field(ge=-INT_MAX - 1, le=INT_MAX)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WordbeeStatusChange(_Body):
    """Wordbee `PUT /api/orders/{orderId}/status`: the new status by its numeric id."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra={
        "examples": [{"status": 21, "message": "Customer asked to cancel", "notify": True}]})

    status: StatusId = Field(description="The new order status (numeric id).")
    message: Annotated[Text, Field(max_length=10_000)] | None = Field(
        default=None, description="Saved with the change in the order history and included in the email (public).")
    notify: StrictBool | None = Field(default=None, description="Default true: false sends no email.")


class BrightpearlNote(_Body):
    text: Annotated[Text, Field(max_length=10_000)] | None = Field(default=None, description="Generated when absent.")
    isPublic: StrictBool | None = Field(default=None, description="Default false.")
    fileId: Annotated[StrictInt, Field(ge=-BIGINT_MAX - 1, le=BIGINT_MAX)] | None = None


class BrightpearlStatusChange(_Body):
    """Brightpearl `PUT /order-service/order/{orderId}/status`."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra={
        "examples": [{"orderStatusId": 30, "orderNote": {"text": "Updating order status!!", "isPublic": True,
                                                          "fileId": 28}}]})

    orderStatusId: StatusId
    orderNote: BrightpearlNote | None = None


class StoreFeederOverride(_Body):
    """One item of StoreFeeder `PUT /orders/override-order-statuses` (a JSON array or XML of these)."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra={
        "examples": [{"OrderNumber": 1029, "OrderStatus": "OnHold"}]})

    OrderNumber: Annotated[StrictInt, Field(gt=0, le=BIGINT_MAX)]
    OrderStatus: Annotated[Text, Field(min_length=1, max_length=100)] | StatusId = Field(
        description="The status code (e.g. OnHold) or numeric id.")


class StoreFeederResult(BaseModel):
    """One item's result, in item order. `Error` carries our message; `Reason` our reason code."""

    OrderNumber: int
    OrderStatus: str | int
    Success: bool
    Error: str | None = None
    Reason: str | None = None


class ErrorBody(BaseModel):
    """Every refusal (DESIGN §11): a reason code of DESIGN §6.1 (or actor_not_authenticated) and a message."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"reason": "transition_not_allowed", "message": "Order 1033 cannot go from Confirmed to Dispatched."}]})

    reason: str
    message: str


class Accepted(BaseModel):
    """202: no outcome within ORDERSTATUS_GATEWAY_WAIT_S; poll `Location` (GET /commands/{command_id})."""

    command_id: str
    status: str = "accepted"


class CommandOutcome(BaseModel):
    """GET /commands/{command_id}: what became of a command, once known."""

    command_id: str
    command_type: str
    outcome: str = Field(description="applied | partial | rejected[:reason] | invalid:reason")
    processed_at: str
    events: list[dict[str, Any]] = Field(description="The command's events as published (DESIGN §6.1).")


class Empty(BaseModel):
    """The seeds answer a successful change with an empty object."""

    model_config = ConfigDict(extra="forbid")


HTTP_MODELS: tuple[type[BaseModel], ...] = (
    WordbeeStatusChange, BrightpearlStatusChange, BrightpearlNote, StoreFeederOverride, StoreFeederResult,
    ErrorBody, Accepted, CommandOutcome, Empty,
)
