"""Drawings of the state machine: Mermaid text, and a self-contained SVG with a layered layout.

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

import re
import unicodedata
from dataclasses import dataclass, field
from html import escape

from grandalf.graphs import Edge, Vertex, graph_core
from grandalf.layouts import SugiyamaLayout

from service.domain.model import ROLES, RuleSet, Status, Transition

_FLAGS = ("initial", "cancelled", "invoiced", "hidden", "can_override_to")


def _types(rules: RuleSet, order_type: str | None) -> list[str]:
    return [order_type] if order_type else sorted(rules.order_types)


def render_mermaid(rules: RuleSet, order_type: str | None = None) -> str:
    lines = ["stateDiagram-v2"]
    for otype in _types(rules, order_type):
        lines.append(f"    state {otype} {{")
        for status in rules.statuses_for(otype):
            flags = [f for f in _FLAGS if getattr(status, f)]
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


# ---------------------------------------------------------------------------------------------
# Text: measuring and escaping

# Advance widths of DejaVu Sans and DejaVu Sans Bold for ASCII 32..126, in thousandths of an em.
_WIDTH_REGULAR = (
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636,
    636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 632, 575, 775,
    752, 295, 295, 656, 557, 863, 748, 787, 603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390,
    337, 390, 838, 500, 500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612,
    635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,
)
_WIDTH_BOLD = (
    348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365, 696, 696, 696, 696,
    696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 580, 1000, 774, 762, 734, 830, 683, 683, 821,
    837, 372, 372, 775, 637, 995, 837, 850, 733, 850, 770, 720, 682, 812, 774, 1103, 771, 724, 725, 457,
    365, 457, 838, 500, 500, 675, 716, 593, 716, 678, 435, 716, 712, 343, 343, 665, 343, 1042, 712, 687,
    716, 716, 493, 595, 478, 712, 652, 924, 645, 652, 582, 712, 365, 712, 838,
)
FONT_FAMILY = "DejaVu Sans, Verdana, Arial, Helvetica, sans-serif"

# characters XML 1.0 does not allow, even escaped (a YAML "\x01" would otherwise break the file)
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def text_width(text: str, size: float, bold: bool = False) -> float:
    """An upper estimate of the rendered width of `text` at font size `size`."""
    table = _WIDTH_BOLD if bold else _WIDTH_REGULAR
    total = 0
    for ch in text:
        code = ord(ch)
        if 32 <= code < 127:
            total += table[code - 32]
        elif unicodedata.combining(ch):
            continue
        elif unicodedata.east_asian_width(ch) in ("W", "F"):
            total += 1000
        else:
            total += 800
    return total * size / 1000


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _esc(text: str) -> str:
    """Text or attribute value, escaped for XML (quotes too)."""
    return escape(_clean(text), quote=True)


def _shorten(text: str, size: float, limit: float, bold: bool = False) -> str:
    text = _clean(text)
    if text_width(text, size, bold) <= limit:
        return text
    while text and text_width(text + "…", size, bold) > limit:
        text = text[:-1]
    return text.rstrip() + "…"


# ---------------------------------------------------------------------------------------------
# Styles: what the picture says with colour and dashes (the legend draws the same table)


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


def _ordered_roles(roles: frozenset[str]) -> list[str]:
    """Roles in the order of DESIGN §5.1 (client, staff, manager, system), any unknown one after them."""
    return [r for r in ROLES if r in roles] + sorted(roles - set(ROLES))


def role_label(roles: frozenset[str]) -> str:
    """The label of a transition: its roles, in the order of DESIGN §5.1."""
    return ", ".join(_ordered_roles(roles))


@dataclass(frozen=True)
class StatusLook:
    fill: str
    stroke: str
    text: str


_PLAIN = StatusLook("#ffffff", "#37474f", "#212121")
_LOOKS = {
    "cancelled": StatusLook("#ffebee", "#c62828", "#212121"),
    "invoiced": StatusLook("#e8f5e9", "#2e7d32", "#212121"),
    "initial": StatusLook("#e3f2fd", "#1565c0", "#212121"),
}
_HIDDEN_TEXT = "#757575"
_OVERRIDE_RING = "#6a1b9a"
_FLAG_WORDS = {
    "initial": "initial",
    "cancelled": "cancelled",
    "invoiced": "invoiced",
    "hidden": "hidden",
    "can_override_to": "override target",
}


def _look(status: Status) -> StatusLook:
    for flag in ("cancelled", "invoiced", "initial"):
        if getattr(status, flag):
            return _LOOKS[flag]
    return _PLAIN


def _flags(status: Status) -> list[str]:
    return [f for f in _FLAGS if getattr(status, f)]


# ---------------------------------------------------------------------------------------------
# Geometry

NAME_SIZE = 12.0
FLAG_SIZE = 10.0
LABEL_SIZE = 11.0
BOX_PAD = 12.0
BOX_MIN_W = 110.0
BOX_MAX_TEXT_W = 260.0
RING = 4.0  # the override target's outer ring, outside the box
LABEL_H = 17.0
LABEL_PAD = 5.0
START_R = 7.0
XSPACE = 26.0
YSPACE = 30.0
COMPONENT_GAP = 48.0
PANEL_PAD = 18.0
PANEL_TITLE_H = 34.0
PANEL_GAP = 24.0
MAX_ROW_W = 1560.0
LOOSE_CAPTION = "Statuses of this order type that no transition leaves or enters:"


@dataclass
class _View:
    """What grandalf reads (w, h) and writes (xy, the centre) for a vertex."""

    w: float
    h: float
    xy: tuple[float, float] = (0.0, 0.0)


@dataclass
class _Node:
    kind: str  # "status", "label" or "start"
    view: _View
    status: Status | None = None
    index: int = -1  # the transition of a label node


@dataclass
class _Box:
    """A placed rectangle, by its centre."""

    x: float
    y: float
    w: float
    h: float

    @property
    def left(self) -> float:
        return self.x - self.w / 2

    @property
    def top(self) -> float:
        return self.y - self.h / 2

    @property
    def bottom(self) -> float:
        return self.y + self.h / 2

    def moved(self, dx: float, dy: float) -> _Box:
        return _Box(self.x + dx, self.y + dy, self.w, self.h)


Point = tuple[float, float]


@dataclass
class _Path:
    """An edge: a start point then lines ("L", p) and cubic curves ("C", c1, c2, p)."""

    start: Point
    steps: list[tuple] = field(default_factory=list)

    def d(self, dx: float, dy: float) -> str:
        def pt(p: Point) -> str:
            return f"{p[0] + dx:.1f},{p[1] + dy:.1f}"

        out = [f"M{pt(self.start)}"]
        for step in self.steps:
            out.append(f"{step[0]}" + " ".join(pt(p) for p in step[1:]))
        return " ".join(out)


@dataclass
class _PanelLayout:
    order_type: str
    statuses: dict[int, _Box]
    labels: dict[int, _Box]  # by transition index
    paths: dict[int, _Path]
    start: _Box | None
    start_path: _Path | None
    loose_caption: Point | None
    width: float
    height: float
    transitions: list[Transition]
    status_of: dict[int, Status]


def _status_size(status: Status, two_lines: bool) -> tuple[float, float]:
    name = _shorten(f"{status.name} ({status.id})", NAME_SIZE, BOX_MAX_TEXT_W, bold=True)
    flags = " · ".join(_FLAG_WORDS[f] for f in _flags(status))
    inner = max(text_width(name, NAME_SIZE, bold=True), text_width(flags, FLAG_SIZE))
    w = max(BOX_MIN_W, inner + 2 * BOX_PAD) + 2 * RING
    h = (44.0 if two_lines else 30.0) + 2 * RING
    return w, h


def _vertex(node: _Node) -> Vertex:
    v = Vertex(node)
    v.view = node.view  # grandalf reads the size from, and writes the position to, `view`
    return v


def _back_edges(status_ids: list[int], edges: list[tuple[int, int]], roots: list[int]) -> set[tuple[int, int]]:
    """Edges closing a cycle, found by a depth-first search from the roots: reversing them leaves a DAG."""
    out: dict[int, list[int]] = {s: [] for s in status_ids}
    for a, b in edges:
        out[a].append(b)
    state: dict[int, int] = {}  # 1 on the stack, 2 done
    back: set[tuple[int, int]] = set()
    for root in roots + status_ids:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(out[root]))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(out[child])))
    return back


def _components(vertices: list[Vertex], edges: list[Edge]) -> list[tuple[list[Vertex], list[Edge]]]:
    """Connected components, each in input order (grandalf's own Graph orders edges by a set)."""
    parent = {id(v): id(v) for v in vertices}

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for e in edges:
        a, b = find(id(e.v[0])), find(id(e.v[1]))
        if a != b:
            parent[b] = a
    groups: dict[int, tuple[list[Vertex], list[Edge]]] = {}
    for v in vertices:
        groups.setdefault(find(id(v)), ([], []))[0].append(v)
    for e in edges:
        groups[find(id(e.v[0]))][1].append(e)
    return list(groups.values())


@dataclass
class _Graph:
    """One order type as a layout graph: a vertex per status, per transition label, and the start dot."""

    statuses: dict[int, Vertex]
    labels: dict[int, Vertex]  # by transition index
    pieces: dict[int, tuple[Edge, Edge | None]]  # transition index -> (from -> label, label -> to)
    start: Vertex | None
    start_edge: Edge | None
    edges: list[Edge]
    inverted: list[Edge]  # the pieces of transitions that close a cycle

    @property
    def vertices(self) -> list[Vertex]:
        return ([self.start] if self.start else []) + list(self.statuses.values()) + list(self.labels.values())


def _build_graph(statuses: list[Status], transitions: list[Transition]) -> _Graph:
    two_lines = any(_flags(s) for s in statuses)
    svert = {s.id: _vertex(_Node("status", _View(*_status_size(s, two_lines)), status=s)) for s in statuses}
    initial = next((s for s in statuses if s.initial), None)
    back = _back_edges(list(svert), [(t.from_id, t.to_id) for t in transitions], [initial.id] if initial else [])
    graph = _Graph(svert, {}, {}, None, None, [], [])
    for i, t in enumerate(transitions):
        text = role_label(t.roles)
        label = _vertex(_Node("label", _View(text_width(text, LABEL_SIZE) + 2 * LABEL_PAD, LABEL_H), index=i))
        graph.labels[i] = label
        first = Edge(svert[t.from_id], label)
        # a self-loop (the rules file refuses them; a RuleSet built in code may not) returns from its label
        second = Edge(label, svert[t.to_id]) if t.from_id != t.to_id else None
        graph.pieces[i] = (first, second)
        for e in (first, second):
            if e is not None:
                graph.edges.append(e)
                if (t.from_id, t.to_id) in back:
                    graph.inverted.append(e)
    if initial:
        graph.start = _vertex(_Node("start", _View(2 * START_R, 2 * START_R)))
        graph.start_edge = Edge(graph.start, svert[initial.id])
        graph.edges.append(graph.start_edge)
    return graph


def _layout_component(vertices: list[Vertex], edges: list[Edge], inverted: list[Edge], roots: list[Vertex]):
    """Run the Sugiyama layout; return the layout and the band (top, bottom) of every layer."""
    sug = SugiyamaLayout(graph_core(vertices, edges))
    sug.xspace, sug.yspace = XSPACE, YSPACE
    sug.dw, sug.dh = 4.0, 4.0  # dummy nodes of long edges: thin, so they cost little room
    sug.init_all(roots=roots, inverted_edges=inverted)
    sug.draw(N=6.5)
    # grandalf keeps each layer's vertices apart already; make it a guarantee, in layer order
    for layer in sug.layers:
        ordered = sorted(layer, key=lambda v: sug.grx[v].pos)
        for left, right in zip(ordered, ordered[1:], strict=False):
            least = left.view.xy[0] + (left.view.w + right.view.w) / 2 + XSPACE
            if right.view.xy[0] < least:
                right.view.xy = (least, right.view.xy[1])
    bands = [
        (min(v.view.xy[1] - v.view.h / 2 for v in layer), max(v.view.xy[1] + v.view.h / 2 for v in layer))
        for layer in sug.layers
    ]
    return sug, bands


class _Placement:
    """Where the laid-out components went: every vertex (dummies included) with its layout and offset."""

    def __init__(self) -> None:
        self.offset: dict[int, Point] = {}  # id(vertex) -> shift of its component
        self.layout: dict[int, tuple[SugiyamaLayout, list[tuple[float, float]]]] = {}

    def add(self, sug: SugiyamaLayout, bands: list[tuple[float, float]], dx: float, dy: float) -> None:
        shifted = [(a + dy, b + dy) for a, b in bands]
        for layer in sug.layers:
            for v in layer:
                self.offset[id(v)] = (dx, dy)
                self.layout[id(v)] = (sug, shifted)

    def has(self, v) -> bool:
        return id(v) in self.offset

    def xy(self, v) -> Point:
        dx, dy = self.offset[id(v)]
        return (v.view.xy[0] + dx, v.view.xy[1] + dy)

    def box(self, v) -> _Box:
        x, y = self.xy(v)
        return _Box(x, y, v.view.w, v.view.h)

    def rank(self, v) -> int:
        return self.layout[id(v)][0].grx[v].rank

    def band(self, v) -> tuple[float, float]:
        """The top and bottom of the layer `v` is in."""
        return self.layout[id(v)][1][self.rank(v)]

    def chain(self, e: Edge) -> list:
        """The edge's vertices in order from its tail to its head, with the dummy vertices of its layers between."""
        a, b = e.v
        sug = self.layout[id(a)][0]
        ra, rb = sug.grx[a].rank, sug.grx[b].rank
        ctrl = sug.ctrls.get(e, {})
        step = 1 if rb > ra else -1
        return [a] + [ctrl[r] for r in range(ra + step, rb, step)] + [b]


def _place_components(graph: _Graph) -> tuple[_Placement, float, float, list[Vertex]]:
    """Lay out each connected component and put them side by side, the one with the start first.

    Returns the placement, the width and bottom of the drawing, and the statuses with no edge."""
    placement = _Placement()
    laid, loose = [], []
    for cv, ce in _components(graph.vertices, graph.edges):
        if not ce:
            loose.extend(v for v in cv if v.data.kind == "status")
            continue
        roots = [graph.start] if graph.start in cv else []
        sug, bands = _layout_component(cv, ce, [e for e in graph.inverted if e in ce], roots)
        every = [v for layer in sug.layers for v in layer]
        x0 = min(v.view.xy[0] - v.view.w / 2 for v in every)
        x1 = max(v.view.xy[0] + v.view.w / 2 for v in every)
        laid.append((graph.start in cv, len(cv), sug, bands, x0, x1))
    laid.sort(key=lambda c: (not c[0], -c[1]))
    x, bottom = PANEL_PAD, PANEL_TITLE_H
    for _, _, sug, bands, x0, x1 in laid:
        y0, y1 = bands[0][0], bands[-1][1]
        placement.add(sug, bands, x - x0, PANEL_TITLE_H - y0)
        x += (x1 - x0) + COMPONENT_GAP
        bottom = max(bottom, PANEL_TITLE_H + (y1 - y0))
    width = x - COMPONENT_GAP + PANEL_PAD if laid else 2 * PANEL_PAD
    return placement, width, bottom, loose


def _place_loose(loose: list[Vertex], width: float, top: float) -> tuple[dict[int, _Box], float, float]:
    """Statuses with no transition, in rows under the caption; returns their boxes, the width and the bottom."""
    width = max(width, 2 * PANEL_PAD + text_width(LOOSE_CAPTION, 11))
    row_w = max(width - 2 * PANEL_PAD, max(v.view.w for v in loose))
    boxes: dict[int, _Box] = {}
    x, y, row_h = PANEL_PAD, top, 0.0
    for v in loose:
        if x > PANEL_PAD and x + v.view.w > PANEL_PAD + row_w:
            x, y, row_h = PANEL_PAD, y + row_h + 14, 0.0
        boxes[v.data.status.id] = _Box(x + v.view.w / 2, y + v.view.h / 2, v.view.w, v.view.h)
        x += v.view.w + XSPACE
        row_h = max(row_h, v.view.h)
        width = max(width, x - XSPACE + PANEL_PAD)
    return boxes, width, y + row_h


def _ports(chains: dict[int, list], place: _Placement) -> dict[tuple[int, int], float]:
    """The x where each edge meets its status: the edges on one side of a box spread along it, in the
    order of where they go, so arrowheads do not pile up. Keyed by (edge, 0 for the tail or 1 for the head)."""
    sides: dict[tuple[int, int], list[tuple[float, int, int, Vertex]]] = {}
    for i, c in chains.items():
        for end, neighbour, which in ((c[0], c[1], 0), (c[-1], c[-2], 1)):
            if end.data.kind == "status":
                side = 1 if place.rank(neighbour) > place.rank(end) else -1
                sides.setdefault((id(end), side), []).append((place.xy(neighbour)[0], i, which, end))
    port_x: dict[tuple[int, int], float] = {}
    for items in sides.values():
        items.sort(key=lambda item: item[:3])
        owner = items[0][3]
        usable = owner.view.w - 2 * RING - 24
        step = min(16.0, usable / max(len(items) - 1, 1))
        for k, (_, i, which, _) in enumerate(items):
            port_x[(i, which)] = place.xy(owner)[0] + (k - (len(items) - 1) / 2) * step
    return port_x


def _route(c: list, tail_x: float | None, head_x: float | None, place: _Placement) -> _Path:
    """The path along a chain: straight through each layer at its vertex, a curve across each gap between layers.

    Inside a layer only this edge's own vertex (a label or a dummy) is at its x, so the path crosses no box or
    label; the curves stay within the gaps, where there are no boxes at all."""

    def x_of(k: int) -> float:
        if k == 0 and tail_x is not None:
            return tail_x
        if k == len(c) - 1 and head_x is not None:
            return head_x
        return place.xy(c[k])[0]

    def at_box(v, side: int) -> float:
        """The y of the top (side -1) or bottom (+1) of the box itself (inside an override ring)."""
        half = START_R if v.data.kind == "start" else v.view.h / 2 - RING
        return place.xy(v)[1] + side * half

    def at_band(v, side: int) -> float:
        top, bottom = place.band(v)
        return bottom if side > 0 else top

    def direction(a, b) -> int:
        return 1 if place.rank(b) > place.rank(a) else -1

    d = direction(c[0], c[1])
    x = x_of(0)
    path = _Path((x, at_box(c[0], d)))
    prev = (x, at_band(c[0], d))
    if abs(prev[1] - path.start[1]) > 0.05:
        path.steps.append(("L", prev))
    for k in range(1, len(c)):
        d = direction(c[k - 1], c[k])
        x, y_in = x_of(k), at_band(c[k], -d)
        bend = (y_in - prev[1]) / 2
        path.steps.append(("C", (prev[0], prev[1] + bend), (x, y_in - bend), (x, y_in)))
        if k == len(c) - 1:
            y_box = at_box(c[k], -d)
            if abs(y_box - y_in) > 0.05:
                path.steps.append(("L", (x, y_box)))
            break
        y_out = at_band(c[k], direction(c[k], c[k + 1]))
        if abs(y_out - y_in) > 0.05:
            path.steps.append(("L", (x, y_out)))
        prev = (x, y_out)
    return path


def _layout_panel(rules: RuleSet, otype: str) -> _PanelLayout:
    statuses = rules.statuses_for(otype)
    status_of = {s.id: s for s in statuses}
    transitions = [
        t for t in rules.transitions if t.order_type == otype and t.from_id in status_of and t.to_id in status_of
    ]
    graph = _build_graph(statuses, transitions)
    place, width, bottom, loose = _place_components(graph)
    subtitle = _panel_subtitle(len(statuses), len(transitions))
    width = max(width, 2 * PANEL_PAD + text_width(_clean(otype), 17, True) + 10 + text_width(subtitle, 11))
    boxes = {sid: place.box(v) for sid, v in graph.statuses.items() if place.has(v)}
    loose_caption = None
    if loose:
        top = bottom + (28.0 if boxes else 4.0)
        loose_caption = (PANEL_PAD, top + 12)
        loose_boxes, width, bottom = _place_loose(loose, width, top + 22)
        boxes.update(loose_boxes)

    chains = {}
    for i, (first, second) in graph.pieces.items():
        c = place.chain(first)
        chains[i] = c + (place.chain(second)[1:] if second is not None else [c[0]])
    if graph.start_edge:
        chains[-1] = place.chain(graph.start_edge)
    port_x = _ports(chains, place)
    paths = {i: _route(c, port_x.get((i, 0)), port_x.get((i, 1)), place) for i, c in chains.items()}
    return _PanelLayout(
        order_type=otype,
        statuses=boxes,
        labels={i: place.box(v) for i, v in graph.labels.items()},
        paths={i: p for i, p in paths.items() if i >= 0},
        start=place.box(graph.start) if graph.start else None,
        start_path=paths.get(-1),
        loose_caption=loose_caption,
        width=width,
        height=bottom + PANEL_PAD,
        transitions=transitions,
        status_of=status_of,
    )


# ---------------------------------------------------------------------------------------------
# SVG


def _f(v: float) -> str:
    return f"{v:.1f}"


def _marker_id(style: EdgeStyle | None) -> str:
    return f"arrow-{style.kind}" if style else "arrow-start"


def _defs() -> str:
    markers = []
    for style, color in [(s, s.color) for s in EDGE_STYLES] + [(None, "#212121")]:
        markers.append(
            f'<marker id="{_marker_id(style)}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
            f'markerHeight="8" markerUnits="userSpaceOnUse" orient="auto">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>'
        )
    return "<defs>" + "".join(markers) + "</defs>"


def _edge_attrs(style: EdgeStyle) -> str:
    dash = f' stroke-dasharray="{style.dash}"' if style.dash else ""
    return f'stroke="{style.color}" stroke-width="{style.width}"{dash} fill="none"'


def _status_svg(status: Status, b: _Box) -> str:
    look = _look(status)
    flags = _flags(status)
    inner = _Box(b.x, b.y, b.w - 2 * RING, b.h - 2 * RING)
    dash = ' stroke-dasharray="5 3"' if status.hidden else ""
    text_color = _HIDDEN_TEXT if status.hidden else look.text
    italic = ' font-style="italic"' if status.hidden else ""
    tip = f"{status.name} — id {status.id}, code {status.code}" + (f"; {', '.join(flags)}" if flags else "")
    parts = [
        f'<g class="status" data-status-id="{status.id}" data-code="{_esc(status.code)}" '
        f'data-flags="{" ".join(flags)}"><title>{_esc(tip)}</title>'
    ]
    if status.can_override_to:
        parts.append(
            f'<rect class="override-ring" x="{_f(b.left)}" y="{_f(b.top)}" width="{_f(b.w)}" height="{_f(b.h)}" '
            f'rx="9" fill="none" stroke="{_OVERRIDE_RING}" stroke-width="2"/>'
        )
    parts.append(
        f'<rect class="status-box" x="{_f(inner.left)}" y="{_f(inner.top)}" width="{_f(inner.w)}" '
        f'height="{_f(inner.h)}" rx="6" fill="{look.fill}" stroke="{look.stroke}" stroke-width="1.4"{dash}/>'
    )
    name = _shorten(f"{status.name} ({status.id})", NAME_SIZE, BOX_MAX_TEXT_W, bold=True)
    name_y = b.y - 3 if flags else b.y + 4
    parts.append(
        f'<text class="status-name" x="{_f(b.x)}" y="{_f(name_y)}" text-anchor="middle" font-size="{NAME_SIZE:g}" '
        f'font-weight="bold" fill="{text_color}"{italic}>{_esc(name)}</text>'
    )
    if flags:
        words = " · ".join(_FLAG_WORDS[f] for f in flags)
        parts.append(
            f'<text class="status-flags" x="{_f(b.x)}" y="{_f(b.y + 12)}" text-anchor="middle" '
            f'font-size="{FLAG_SIZE:g}" fill="#424242">{_esc(words)}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _panel_subtitle(statuses: int, transitions: int) -> str:
    def count(n: int, noun: str) -> str:
        return f"{n} {noun}" if n == 1 else f"{n} {noun}es" if noun.endswith("s") else f"{n} {noun}s"

    return f"order type · {count(statuses, 'status')}, {count(transitions, 'transition')}"


def _wrap(text: str, size: float, width: float) -> list[str]:
    lines: list[str] = []
    for word in text.split(" "):
        if lines and text_width(lines[-1] + " " + word, size) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _panel_svg(p: _PanelLayout, ox: float, oy: float) -> str:
    out = [
        f'<g class="panel" data-order-type="{_esc(p.order_type)}">',
        f'<rect class="panel-frame" x="{_f(ox)}" y="{_f(oy)}" width="{_f(p.width)}" height="{_f(p.height)}" '
        f'rx="8" fill="#fafafa" stroke="#cfd8dc"/>',
        f'<text class="panel-title" x="{_f(ox + PANEL_PAD)}" y="{_f(oy + 23)}" font-size="17" '
        f'font-weight="bold" fill="#263238">{_esc(p.order_type)}</text>',
        f'<text x="{_f(ox + PANEL_PAD + text_width(_clean(p.order_type), 17, True) + 10)}" y="{_f(oy + 23)}" '
        f'font-size="11" fill="#607d8b">{_panel_subtitle(len(p.status_of), len(p.transitions))}</text>',
    ]
    if p.start and p.start_path:
        out.append(
            f'<g class="start"><circle cx="{_f(p.start.x + ox)}" cy="{_f(p.start.y + oy)}" r="{START_R:g}" '
            f'fill="#212121"/><path d="{p.start_path.d(ox, oy)}" stroke="#212121" stroke-width="1.4" fill="none" '
            f'marker-end="url(#{_marker_id(None)})"/></g>'
        )
    for i, t in enumerate(p.transitions):
        style = edge_style(t.roles)
        text = role_label(t.roles)
        lb = p.labels[i].moved(ox, oy)
        src, dst = p.status_of[t.from_id], p.status_of[t.to_id]
        out.append(
            f'<g class="transition edge-{style.kind}" data-from="{t.from_id}" data-to="{t.to_id}" '
            f'data-roles="{_esc(",".join(_ordered_roles(t.roles)))}">'
            f"<title>{_esc(f'{src.name} → {dst.name}: {text}')}</title>"
            f'<path class="edge" d="{p.paths[i].d(ox, oy)}" {_edge_attrs(style)} '
            f'marker-end="url(#{_marker_id(style)})"/>'
            f'<rect class="edge-label-box" x="{_f(lb.left)}" y="{_f(lb.top)}" width="{_f(lb.w)}" height="{_f(lb.h)}" '
            f'rx="3" fill="#ffffff" stroke="{style.color}" stroke-width="0.8"/>'
            f'<text class="edge-label" x="{_f(lb.x)}" y="{_f(lb.y + 4)}" text-anchor="middle" '
            f'font-size="{LABEL_SIZE:g}" fill="{style.color}">{_esc(text)}</text></g>'
        )
    for sid, b in p.statuses.items():
        out.append(_status_svg(p.status_of[sid], b.moved(ox, oy)))
    if p.loose_caption:
        out.append(
            f'<text x="{_f(p.loose_caption[0] + ox)}" y="{_f(p.loose_caption[1] + oy)}" font-size="11" '
            f'fill="#607d8b">{LOOSE_CAPTION}</text>'
        )
    out.append("</g>")
    return "\n".join(out)


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
        f'<path d="M{_f(x)},{_f(cy)} L{_f(x + 38)},{_f(cy)}" {_edge_attrs(style)} '
        f'marker-end="url(#{_marker_id(style)})"/>'
        f'<text x="{_f(x + 46)}" y="{_f(cy + 4)}" font-size="11" fill="#263238">{_esc(style.legend)}</text></g>'
    )


def _legend_status(flag: str, text: str, x: float, cy: float) -> str:
    look = _LOOKS.get(flag, _PLAIN)
    dash = ' stroke-dasharray="5 3"' if flag == "hidden" else ""
    ring = (
        f'<rect x="{_f(x)}" y="{_f(cy - 11)}" width="36" height="22" rx="7" fill="none" '
        f'stroke="{_OVERRIDE_RING}" stroke-width="2"/>'
        if flag == "can_override_to"
        else ""
    )
    return (
        f'<g class="legend-status legend-status-{flag}">{ring}'
        f'<rect x="{_f(x + 4)}" y="{_f(cy - 7)}" width="28" height="14" rx="4" fill="{look.fill}" '
        f'stroke="{look.stroke}" stroke-width="1.4"{dash}/>'
        f'<text x="{_f(x + 40)}" y="{_f(cy + 4)}" font-size="11" fill="#263238">{_esc(text)}</text></g>'
    )


def _legend_rows() -> list[list[tuple[float, object]]]:
    """The legend's two rows of (width, draw(x, cy)) items: edge kinds, then status markings."""
    edges = [(54 + text_width(s.legend, 11), lambda x, cy, s=s: _legend_edge(s, x, cy)) for s in EDGE_STYLES]
    statuses = [
        (48 + text_width(text, 11), lambda x, cy, f=flag, t=text: _legend_status(f, t, x, cy))
        for flag, text in _LEGEND_STATUSES
    ]
    return [edges, statuses]


def _legend_width() -> float:
    """The width that holds every legend row on one line."""
    return max(sum(w for w, _ in row) + _LEGEND_ITEM_GAP * (len(row) - 1) for row in _legend_rows())


def _legend_svg(rules: RuleSet, ox: float, oy: float, width: float) -> tuple[str, float]:
    """The legend: edge styles, status markings and who may override; returns it and its height."""
    out = [
        '<g class="legend">',
        f'<text x="{_f(ox)}" y="{_f(oy + 14)}" font-size="13" font-weight="bold" fill="#263238">Legend</text>',
    ]
    who = role_label(rules.override_roles)
    note = "Each arrow is a transition, labelled with the roles allowed to take it. " + (
        f"An override ignores the arrows: it may move an order to any override target, and only these roles "
        f"may do it: {who}."
        if who
        else "No role may override."
    )
    y = oy + 14
    for line in _wrap(_clean(note), 11, width - 70):
        out.append(
            f'<text class="legend-note" x="{_f(ox + 70)}" y="{_f(y)}" font-size="11" fill="#455a64">{_esc(line)}</text>'
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


def render_svg(rules: RuleSet, order_type: str | None = None) -> str:
    """A layered drawing of each order type's transition graph, one panel per type, with a legend."""
    panels = [_layout_panel(rules, t) for t in _types(rules, order_type)]
    margin = 16.0
    row_limit = max([MAX_ROW_W] + [p.width for p in panels])
    # panels left to right, wrapped into rows no wider than the widest panel or MAX_ROW_W
    rows: list[list[_PanelLayout]] = [[]] if panels else []
    x = 0.0
    for p in panels:
        if rows[-1] and x + p.width > row_limit:
            rows.append([])
            x = 0.0
        rows[-1].append(p)
        x += p.width + PANEL_GAP
    content_w = max([sum(p.width for p in row) + PANEL_GAP * (len(row) - 1) for row in rows] + [0.0])
    content_w = max(content_w, _legend_width())
    legend, legend_h = _legend_svg(rules, margin, margin, content_w)
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
