"""Drawings of the state machine: Mermaid text, and a self-contained SVG (no Graphviz needed)."""

from __future__ import annotations

import math
from html import escape

from service.domain.model import RuleSet


def _types(rules: RuleSet, order_type: str | None) -> list[str]:
    return [order_type] if order_type else sorted(rules.order_types)


def render_mermaid(rules: RuleSet, order_type: str | None = None) -> str:
    lines = ["stateDiagram-v2"]
    for otype in _types(rules, order_type):
        lines.append(f"    state {otype} {{")
        for status in rules.statuses_for(otype):
            flags = [f for f in ("initial", "cancelled", "invoiced", "hidden", "can_override_to") if getattr(status, f)]
            label = f"{status.name} ({status.id})" + (f" [{', '.join(flags)}]" if flags else "")
            lines.append(f'        {otype}_{status.code} : {label}')
            if status.initial:
                lines.append(f"        [*] --> {otype}_{status.code}")
        for t in rules.transitions:
            if t.order_type == otype:
                src, dst = rules.status(t.from_id), rules.status(t.to_id)
                lines.append(f"        {otype}_{src.code} --> {otype}_{dst.code} : {', '.join(sorted(t.roles))}")
        lines.append("    }")
    return "\n".join(lines) + "\n"


def render_svg(rules: RuleSet, order_type: str | None = None) -> str:
    """Each order type as a ring of statuses with arrows for its transitions, one panel per type."""
    panel, radius, node_w, node_h = 520, 190, 130, 34
    types = _types(rules, order_type)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{panel * len(types)}" height="{panel + 30}" font-family="sans-serif" font-size="11">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    for index, otype in enumerate(types):
        ox = index * panel
        statuses = rules.statuses_for(otype)
        where = {}
        for i, status in enumerate(statuses):
            angle = 2 * math.pi * i / max(len(statuses), 1) - math.pi / 2
            where[status.id] = (ox + panel / 2 + radius * math.cos(angle), 30 + panel / 2 + radius * math.sin(angle))
        parts.append(f'<text x="{ox + 10}" y="20" font-size="16" font-weight="bold">{escape(otype)}</text>')
        for t in rules.transitions:
            if t.order_type != otype:
                continue
            (x1, y1), (x2, y2) = where[t.from_id], where[t.to_id]
            dx, dy = x2 - x1, y2 - y1
            length = math.hypot(dx, dy) or 1
            shrink = min(node_h / 2 / max(abs(dy) / length, 1e-9), node_w / 2 / max(abs(dx) / length, 1e-9))
            x2e, y2e = x2 - dx / length * shrink, y2 - dy / length * shrink
            color = "#c0392b" if t.roles <= {"manager", "system"} else "#555"
            parts.append(
                f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2e:.1f}" y2="{y2e:.1f}" stroke="{color}" marker-end="url(#arrow)">'
                f"<title>{escape(', '.join(sorted(t.roles)))}</title></line>"
            )
        for status in statuses:
            x, y = where[status.id]
            fill = "#fdecea" if status.cancelled else "#eaf2fd" if status.initial else "#f4f4f4"
            dash = ' stroke-dasharray="4 3"' if status.hidden else ""
            width = 3 if status.can_override_to else 1
            parts.append(
                f'<rect x="{x - node_w / 2:.1f}" y="{y - node_h / 2:.1f}" width="{node_w}" height="{node_h}" rx="6" '
                f'fill="{fill}" stroke="#333" stroke-width="{width}"{dash}/>'
                f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle">{escape(status.name)} ({status.id})</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
