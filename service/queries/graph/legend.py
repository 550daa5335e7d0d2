"""The legend above the panels: edge kinds, status markings and who may override."""

from __future__ import annotations

from service.domain.model import RuleSet
from service.queries.graph.style import (
    EDGE_STYLES, LOOKS, OVERRIDE_RING, PLAIN, EdgeStyle, edge_attrs, marker_id, role_label,
)
from service.queries.graph.text import clean, esc, fmt, text_width, wrap


_LEGEND_STATUSES = (
    ("initial", "initial (• marks the entry)"),
    ("cancelled", "cancelled"),
    ("invoiced", "invoiced"),
    ("hidden", "hidden (dashed)"),
    ("can_override_to", "override target (outer ring)"),
    ("plain", "other status"),
)
_LEGEND_ROW_H = 26.0
_LEGEND_ITEM_GAP = 14.0


def _legend_edge(style: EdgeStyle, x: float, cy: float) -> str:
    return (
        f'<g class="legend-edge legend-edge-{style.kind}">'
        f'<path d="M{fmt(x)},{fmt(cy)} L{fmt(x + 38)},{fmt(cy)}" {edge_attrs(style)} '
        f'marker-end="url(#{marker_id(style)})"/>'
        f'<text x="{fmt(x + 46)}" y="{fmt(cy + 4)}" font-size="11" fill="#263238">{esc(style.legend)}</text></g>'
    )


def _legend_status(flag: str, text: str, x: float, cy: float) -> str:
    look = LOOKS.get(flag, PLAIN)
    dash = ' stroke-dasharray="5 3"' if flag == "hidden" else ""
    ring = (
        f'<rect x="{fmt(x)}" y="{fmt(cy - 11)}" width="36" height="22" rx="7" fill="none" '
        f'stroke="{OVERRIDE_RING}" stroke-width="2"/>'
        if flag == "can_override_to"
        else ""
    )
    return (
        f'<g class="legend-status legend-status-{flag}">{ring}'
        f'<rect x="{fmt(x + 4)}" y="{fmt(cy - 7)}" width="28" height="14" rx="4" fill="{look.fill}" '
        f'stroke="{look.stroke}" stroke-width="1.4"{dash}/>'
        f'<text x="{fmt(x + 40)}" y="{fmt(cy + 4)}" font-size="11" fill="#263238">{esc(text)}</text></g>'
    )


def _legend_rows() -> list[list[tuple[float, object]]]:
    """The legend's two rows of (width, draw(x, cy)) items: edge kinds, then status markings."""
    edges = [(54 + text_width(s.legend, 11), lambda x, cy, s=s: _legend_edge(s, x, cy)) for s in EDGE_STYLES]
    statuses = [
        (48 + text_width(text, 11), lambda x, cy, f=flag, t=text: _legend_status(f, t, x, cy))
        for flag, text in _LEGEND_STATUSES
    ]
    return [edges, statuses]


def legend_width() -> float:
    """The width that holds every legend row on one line."""
    return max(sum(w for w, _ in row) + _LEGEND_ITEM_GAP * (len(row) - 1) for row in _legend_rows())


def legend_svg(rules: RuleSet, ox: float, oy: float, width: float) -> tuple[str, float]:
    """The legend: edge styles, status markings and who may override; returns it and its height."""
    out = [
        '<g class="legend">',
        f'<text x="{fmt(ox)}" y="{fmt(oy + 14)}" font-size="13" font-weight="bold" fill="#263238">Legend</text>',
    ]
    who = role_label(rules.override_roles)
    note = "Each arrow is a transition, labelled with the roles allowed to take it. " + (
        f"An override ignores the arrows: it may move an order to any override target, and only these roles "
        f"may do it: {who}."
        if who
        else "No role may override."
    )
    y = oy + 14
    for line in wrap(clean(note), 11, width - 70):
        out.append(
            f'<text class="legend-note" x="{fmt(ox + 70)}" y="{fmt(y)}" font-size="11" fill="#455a64">'
            f"{esc(line)}</text>"
        )
        y += 15
    for row in _legend_rows():
        x = ox
        for w, draw in row:
            if x > ox and x + w > ox + width:
                x, y = ox, y + _LEGEND_ROW_H
            out.append(draw(x, y + 11))
            x += w + _LEGEND_ITEM_GAP
        y += _LEGEND_ROW_H
    out.append("</g>")
    return "\n".join(out), y - oy
