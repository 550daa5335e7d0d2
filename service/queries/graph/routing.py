"""Edge routing: where each edge meets its statuses, and its path through the layers."""

from __future__ import annotations

from grandalf.graphs import Vertex

from service.queries.graph.geometry import RING, START_R, Path
from service.queries.graph.placement import Placement


def ports(chains: dict[int, list], place: Placement) -> dict[tuple[int, int], float]:
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


def route(c: list, tail_x: float | None, head_x: float | None, place: Placement) -> Path:
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
    path = Path((x, at_box(c[0], d)))
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
