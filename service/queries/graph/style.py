"""What the picture says with colour and dashes: edge kinds, status looks, flags and role labels.

The legend draws the same tables, and every style is an SVG attribute (no CSS)."""

from __future__ import annotations

from dataclasses import dataclass

from service.domain.model import ROLES, RuleSet, Status


FLAGS = ("initial", "cancelled", "invoiced", "hidden", "can_override_to")


def drawn_types(rules: RuleSet, order_type: str | None) -> list[str]:
    return [order_type] if order_type else sorted(rules.order_types)


@dataclass(frozen=True)
class EdgeStyle:
    kind: str
    legend: str
    color: str
    width: float
    dash: str | None


CLIENT_EDGE = EdgeStyle("client", "clients may take it (roles include client)", "#1565c0", 1.8, None)
STAFF_EDGE = EdgeStyle("staff", "staff and above, not clients", "#455a64", 1.4, None)
MANAGER_EDGE = EdgeStyle("manager", "manager-only (roles within manager, system)", "#c62828", 1.6, "7 4")
EDGE_STYLES = (CLIENT_EDGE, STAFF_EDGE, MANAGER_EDGE)


def edge_style(roles: frozenset[str]) -> EdgeStyle:
    """Manager-only when every allowed role is manager or system; client when a client may take it."""
    if roles <= {"manager", "system"}:
        return MANAGER_EDGE
    if "client" in roles:
        return CLIENT_EDGE
    return STAFF_EDGE


def ordered_roles(roles: frozenset[str]) -> list[str]:
    """Roles in the order of DESIGN §5.1 (client, staff, manager, system), any unknown one after them."""
    return [r for r in ROLES if r in roles] + sorted(roles - set(ROLES))


def role_label(roles: frozenset[str]) -> str:
    """The label of a transition: its roles, in the order of DESIGN §5.1."""
    return ", ".join(ordered_roles(roles))


@dataclass(frozen=True)
class StatusLook:
    fill: str
    stroke: str
    text: str


PLAIN = StatusLook("#ffffff", "#37474f", "#212121")
LOOKS = {
    "cancelled": StatusLook("#ffebee", "#c62828", "#212121"),
    "invoiced": StatusLook("#e8f5e9", "#2e7d32", "#212121"),
    "initial": StatusLook("#e3f2fd", "#1565c0", "#212121"),
}
HIDDEN_TEXT = "#757575"
OVERRIDE_RING = "#6a1b9a"
FLAG_WORDS = {
    "initial": "initial",
    "cancelled": "cancelled",
    "invoiced": "invoiced",
    "hidden": "hidden",
    "can_override_to": "override target",
}


def status_look(status: Status) -> StatusLook:
    for flag in ("cancelled", "invoiced", "initial"):
        if getattr(status, flag):
            return LOOKS[flag]
    return PLAIN


def flags_of(status: Status) -> list[str]:
    return [f for f in FLAGS if getattr(status, f)]


def marker_id(style: EdgeStyle | None) -> str:
    return f"arrow-{style.kind}" if style else "arrow-start"


def edge_attrs(style: EdgeStyle) -> str:
    dash = f' stroke-dasharray="{style.dash}"' if style.dash else ""
    return f'stroke="{style.color}" stroke-width="{style.width}"{dash} fill="none"'
