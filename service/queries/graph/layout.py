"""The layered layout of one order type: grandalf's Sugiyama layout per connected component, with a label
node per transition, components side by side and statuses without transitions in rows below."""

from __future__ import annotations

from dataclasses import dataclass

from grandalf.graphs import Edge, Vertex, graph_core
from grandalf.layouts import SugiyamaLayout

from service.domain.model import RuleSet, Status, Transition
from service.queries.graph.geometry import (
    BOX_MAX_TEXT_W, BOX_MIN_W, BOX_PAD, Box, COMPONENT_GAP, FLAG_SIZE, LABEL_H, LABEL_PAD, LABEL_SIZE,
    LOOSE_CAPTION, NAME_SIZE, Node, PANEL_PAD, PANEL_TITLE_H, Path, Point, RING, START_R, View, XSPACE, YSPACE,
)
from service.queries.graph.placement import Placement
from service.queries.graph.routing import ports, route
from service.queries.graph.style import FLAG_WORDS, flags_of, role_label
from service.queries.graph.text import clean, shorten, text_width


@dataclass
class PanelLayout:
    order_type: str
    statuses: dict[int, Box]
    labels: dict[int, Box]  # by transition index
    paths: dict[int, Path]
    start: Box | None
    start_path: Path | None
    loose_caption: Point | None
    width: float
    height: float
    transitions: list[Transition]
    status_of: dict[int, Status]


def _status_size(status: Status, two_lines: bool) -> tuple[float, float]:
    name = shorten(f"{status.name} ({status.id})", NAME_SIZE, BOX_MAX_TEXT_W, bold=True)
    flags = " · ".join(FLAG_WORDS[f] for f in flags_of(status))
    inner = max(text_width(name, NAME_SIZE, bold=True), text_width(flags, FLAG_SIZE))
    w = max(BOX_MIN_W, inner + 2 * BOX_PAD) + 2 * RING
    h = (44.0 if two_lines else 30.0) + 2 * RING
    return w, h


def _vertex(node: Node) -> Vertex:
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
    two_lines = any(flags_of(s) for s in statuses)
    svert = {s.id: _vertex(Node("status", View(*_status_size(s, two_lines)), status=s)) for s in statuses}
    initial = next((s for s in statuses if s.initial), None)
    back = _back_edges(list(svert), [(t.from_id, t.to_id) for t in transitions], [initial.id] if initial else [])
    graph = _Graph(svert, {}, {}, None, None, [], [])
    for i, t in enumerate(transitions):
        text = role_label(t.roles)
        label = _vertex(Node("label", View(text_width(text, LABEL_SIZE) + 2 * LABEL_PAD, LABEL_H), index=i))
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
        graph.start = _vertex(Node("start", View(2 * START_R, 2 * START_R)))
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


def _place_components(graph: _Graph) -> tuple[Placement, float, float, list[Vertex]]:
    """Lay out each connected component and put them side by side, the one with the start first.

    Returns the placement, the width and bottom of the drawing, and the statuses with no edge."""
    placement = Placement()
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


def _place_loose(loose: list[Vertex], width: float, top: float) -> tuple[dict[int, Box], float, float]:
    """Statuses with no transition, in rows under the caption; returns their boxes, the width and the bottom."""
    width = max(width, 2 * PANEL_PAD + text_width(LOOSE_CAPTION, 11))
    row_w = max(width - 2 * PANEL_PAD, max(v.view.w for v in loose))
    boxes: dict[int, Box] = {}
    x, y, row_h = PANEL_PAD, top, 0.0
    for v in loose:
        if x > PANEL_PAD and x + v.view.w > PANEL_PAD + row_w:
            x, y, row_h = PANEL_PAD, y + row_h + 14, 0.0
        boxes[v.data.status.id] = Box(x + v.view.w / 2, y + v.view.h / 2, v.view.w, v.view.h)
        x += v.view.w + XSPACE
        row_h = max(row_h, v.view.h)
        width = max(width, x - XSPACE + PANEL_PAD)
    return boxes, width, y + row_h


def layout_panel(rules: RuleSet, otype: str) -> PanelLayout:
    statuses = rules.statuses_for(otype)
    status_of = {s.id: s for s in statuses}
    transitions = [
        t for t in rules.transitions if t.order_type == otype and t.from_id in status_of and t.to_id in status_of
    ]
    graph = _build_graph(statuses, transitions)
    place, width, bottom, loose = _place_components(graph)
    subtitle = panel_subtitle(len(statuses), len(transitions))
    width = max(width, 2 * PANEL_PAD + text_width(clean(otype), 17, True) + 10 + text_width(subtitle, 11))
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
    port_x = ports(chains, place)
    paths = {i: route(c, port_x.get((i, 0)), port_x.get((i, 1)), place) for i, c in chains.items()}
    return PanelLayout(
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


def panel_subtitle(statuses: int, transitions: int) -> str:
    def count(n: int, noun: str) -> str:
        return f"{n} {noun}" if n == 1 else f"{n} {noun}es" if noun.endswith("s") else f"{n} {noun}s"

    return f"order type · {count(statuses, 'status')}, {count(transitions, 'transition')}"
