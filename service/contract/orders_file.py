"""The orders JSON lines of DESIGN §5.2, validated with pydantic; errors carry their line number."""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service.contract.validation import first_error, unstorable_problem
from service.domain.model import RuleSet


class OrdersFileError(ValueError):
    """A refusal of an orders file: one line naming the line number and the problem."""


class ContactRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: str = Field(pattern=r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+$", max_length=254)
    name: str | None = Field(default=None, max_length=200)
    kind: Literal["client", "stakeholder"] = "client"

    @field_validator("name")
    @classmethod
    def _single_line(cls, value: str | None) -> str | None:
        if value is not None and ("\r" in value or "\n" in value):
            raise ValueError("name must be a single line")
        return value


class OrderRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")
    order_id: int = Field(gt=0, le=2**63 - 1)  # orders.order_id is a bigint
    order_type: str = Field(min_length=1)
    status: int | str | None = None
    client_id: str | None = None
    contacts: list[ContactRecord] = Field(default_factory=list)
    payments_total: Decimal = Decimal("0")
    goods_out_notes: list[str] = Field(default_factory=list)
    reservations: list[str] = Field(default_factory=list)
    coupons: list[str] = Field(default_factory=list)

    @field_validator("payments_total")
    @classmethod
    def _fits_numeric_18_4(cls, value: Decimal) -> Decimal:
        # orders.payments_total is numeric(18, 4): refuse here (with the line number) what Postgres would
        limit = Decimal(10) ** 14
        if abs(value) >= limit or abs(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)) >= limit:
            raise ValueError("must be less than 10^14 in absolute value")
        return value


def parse_orders(lines: list[str], rules: RuleSet) -> list[tuple[OrderRecord, int | None]]:
    """Validate every line against the rule set; return (record, resolved status id or None = keep/initial)."""
    parsed: list[tuple[OrderRecord, int | None]] = []
    order_types = rules.order_types
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            problem = unstorable_problem(data)
            if problem:
                raise OrdersFileError(f"line {number}: {problem}")
            record = OrderRecord.model_validate(data)
        except json.JSONDecodeError as exc:
            raise OrdersFileError(f"line {number}: not valid JSON: {exc.msg}") from None
        except ValidationError as exc:
            raise OrdersFileError(f"line {number}: {first_error(exc, whole='record')}") from None
        if record.order_type not in order_types:
            raise OrdersFileError(f"line {number}: order {record.order_id}: unknown order type {record.order_type!r}")
        status_id: int | None = None
        if record.status is not None:
            status = rules.status(record.status)
            if status is None:
                raise OrdersFileError(f"line {number}: order {record.order_id}: unknown status {record.status!r}")
            if record.order_type not in status.order_types:
                raise OrdersFileError(
                    f"line {number}: order {record.order_id}: status {status.code} is not available to {record.order_type}"
                )
            status_id = status.id
        elif rules.initial_status(record.order_type) is None:
            raise OrdersFileError(
                f"line {number}: order {record.order_id}: no status given and {record.order_type} has no initial status"
            )
        parsed.append((record, status_id))
    return parsed
