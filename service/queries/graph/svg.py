"""The state machine as a self-contained SVG: panels of layered drawings (one per order type) and a legend.

The SVG is laid out by grandalf's Sugiyama layout (the algorithm of Graphviz's `dot`, in pure
Python). Every transition becomes two layout edges through a *label node* the size of its role
label, so labels get their own room in the layers like statuses do and can overlap neither a
status nor another label. Edges are routed through the layers: straight down (or up, for the
edges that close a cycle) inside a layer, at the x of their own label or dummy node, and as a
curve only in the gap between two layers, so an edge never runs across a status or a label.

The output needs no fonts, CSS or scripts from elsewhere: text is sized from DejaVu Sans metrics
(the widest of the usual sans-serif fonts, so another font only makes the text narrower than its
box) and every style is an SVG attribute.
"""

from __future__ import annotations

from service.domain.model import RuleSet, Status
from service.queries.graph.geometry import (
    BOX_MAX_TEXT_W, Box, FLAG_SIZE, LABEL_SIZE, LOOSE_CAPTION, MAX_ROW_W, NAME_SIZE, PANEL_GAP, PANEL_PAD, RING,
    START_R,
)
from service.queries.graph.layout import PanelLayout, layout_panel, panel_subtitle
from service.queries.graph.legend import legend_svg, legend_width
from service.queries.graph.style import (
    EDGE_STYLES, FLAG_WORDS, HIDDEN_TEXT, OVERRIDE_RING, drawn_types, edge_attrs, edge_style, flags_of,
    marker_id, ordered_roles, role_label, status_look,
)
from service.queries.graph.text import FONT_FAMILY, clean, esc, fmt, shorten, text_width


def _defs() -> str:
    markers = []
    for style, color in [(s, s.color) for s in EDGE_STYLES] + [(None, "#212121")]:
        markers.append(
            f'<marker id="{marker_id(style)}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
            f'markerHeight="8" markerUnits="userSpaceOnUse" orient="auto">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>'
        )
    return "<defs>" + "".join(markers) + "</defs>"


def _status_svg(status: Status, b: Box) -> str:
    look = status_look(status)
    flags = flags_of(status)
    inner = Box(b.x, b.y, b.w - 2 * RING, b.h - 2 * RING)
    dash = ' stroke-dasharray="5 3"' if status.hidden else ""
    text_color = HIDDEN_TEXT if status.hidden else look.text
    italic = ' font-style="italic"' if status.hidden else ""
    tip = f"{status.name} — id {status.id}, code {status.code}" + (f"; {', '.join(flags)}" if flags else "")
    parts = [
        f'<g class="status" data-status-id="{status.id}" data-code="{esc(status.code)}" '
        f'data-flags="{" ".join(flags)}"><title>{esc(tip)}</title>'
    ]
    if status.can_override_to:
        parts.append(
            f'<rect class="override-ring" x="{fmt(b.left)}" y="{fmt(b.top)}" width="{fmt(b.w)}" height="{fmt(b.h)}" '
            f'rx="9" fill="none" stroke="{OVERRIDE_RING}" stroke-width="2"/>'
        )
    parts.append(
        f'<rect class="status-box" x="{fmt(inner.left)}" y="{fmt(inner.top)}" width="{fmt(inner.w)}" '
        f'height="{fmt(inner.h)}" rx="6" fill="{look.fill}" stroke="{look.stroke}" stroke-width="1.4"{dash}/>'
    )
    name = shorten(f"{status.name} ({status.id})", NAME_SIZE, BOX_MAX_TEXT_W, bold=True)
    name_y = b.y - 3 if flags else b.y + 4
    parts.append(
        f'<text class="status-name" x="{fmt(b.x)}" y="{fmt(name_y)}" text-anchor="middle" font-size="{NAME_SIZE:g}" '
        f'font-weight="bold" fill="{text_color}"{italic}>{esc(name)}</text>'
    )
    if flags:
        words = " · ".join(FLAG_WORDS[f] for f in flags)
        parts.append(
            f'<text class="status-flags" x="{fmt(b.x)}" y="{fmt(b.y + 12)}" text-anchor="middle" '
            f'font-size="{FLAG_SIZE:g}" fill="#424242">{esc(words)}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _panel_svg(p: PanelLayout, ox: float, oy: float) -> str:
    out = [
        f'<g class="panel" data-order-type="{esc(p.order_type)}">',
        f'<rect class="panel-frame" x="{fmt(ox)}" y="{fmt(oy)}" width="{fmt(p.width)}" height="{fmt(p.height)}" '
        f'rx="8" fill="#fafafa" stroke="#cfd8dc"/>',
        f'<text class="panel-title" x="{fmt(ox + PANEL_PAD)}" y="{fmt(oy + 23)}" font-size="17" '
        f'font-weight="bold" fill="#263238">{esc(p.order_type)}</text>',
        f'<text x="{fmt(ox + PANEL_PAD + text_width(clean(p.order_type), 17, True) + 10)}" y="{fmt(oy + 23)}" '
        f'font-size="11" fill="#607d8b">{panel_subtitle(len(p.status_of), len(p.transitions))}</text>',
    ]
    if p.start and p.start_path:
        out.append(
            f'<g class="start"><circle cx="{fmt(p.start.x + ox)}" cy="{fmt(p.start.y + oy)}" r="{START_R:g}" '
            f'fill="#212121"/><path d="{p.start_path.d(ox, oy)}" stroke="#212121" stroke-width="1.4" fill="none" '
            f'marker-end="url(#{marker_id(None)})"/></g>'
        )
    for i, t in enumerate(p.transitions):
        style = edge_style(t.roles)
        text = role_label(t.roles)
        lb = p.labels[i].moved(ox, oy)
        src, dst = p.status_of[t.from_id], p.status_of[t.to_id]
        out.append(
            f'<g class="transition edge-{style.kind}" data-from="{t.from_id}" data-to="{t.to_id}" '
            f'data-roles="{esc(",".join(ordered_roles(t.roles)))}">'
            f"<title>{esc(f'{src.name} → {dst.name}: {text}')}</title>"
            f'<path class="edge" d="{p.paths[i].d(ox, oy)}" {edge_attrs(style)} '
            f'marker-end="url(#{marker_id(style)})"/>'
            f'<rect class="edge-label-box" x="{fmt(lb.left)}" y="{fmt(lb.top)}" width="{fmt(lb.w)}" '
            f'height="{fmt(lb.h)}" '
            f'rx="3" fill="#ffffff" stroke="{style.color}" stroke-width="0.8"/>'
            f'<text class="edge-label" x="{fmt(lb.x)}" y="{fmt(lb.y + 4)}" text-anchor="middle" '
            f'font-size="{LABEL_SIZE:g}" fill="{style.color}">{esc(text)}</text></g>'
        )
    for sid, b in p.statuses.items():
        out.append(_status_svg(p.status_of[sid], b.moved(ox, oy)))
    if p.loose_caption:
        out.append(
            f'<text x="{fmt(p.loose_caption[0] + ox)}" y="{fmt(p.loose_caption[1] + oy)}" font-size="11" '
            f'fill="#607d8b">{LOOSE_CAPTION}</text>'
        )
    out.append("</g>")
    return "\n".join(out)


def render_svg(rules: RuleSet, order_type: str | None = None) -> str:
    """A layered drawing of each order type's transition graph, one panel per type, with a legend."""
    panels = [layout_panel(rules, t) for t in drawn_types(rules, order_type)]
    margin = 16.0
    row_limit = max([MAX_ROW_W] + [p.width for p in panels])
    # panels left to right, wrapped into rows no wider than the widest panel or MAX_ROW_W
    rows: list[list[PanelLayout]] = [[]] if panels else []
    x = 0.0
    for p in panels:
        if rows[-1] and x + p.width > row_limit:
            rows.append([])
            x = 0.0
        rows[-1].append(p)
        x += p.width + PANEL_GAP
    content_w = max([sum(p.width for p in row) + PANEL_GAP * (len(row) - 1) for row in rows] + [0.0])
    content_w = max(content_w, legend_width())
    legend, legend_h = legend_svg(rules, margin, margin, content_w)
    width = content_w + 2 * margin
    y = margin + legend_h + 12
    body = []
    for row in rows:
        x = margin
        for p in row:
            body.append(_panel_svg(p, x, y))
            x += p.width + PANEL_GAP
        y += max(p.height for p in row) + PANEL_GAP
    height = y - (PANEL_GAP if rows else 12) + margin
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT_FAMILY}" font-size="11">'
    )
    background = '<rect width="100%" height="100%" fill="#ffffff"/>'
    return "\n".join([head, _defs(), background, legend, *body, "</svg>"]) + "\n"
