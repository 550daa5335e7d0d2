"""Where the laid-out components went: positions, layers and the vertex chain of every layout edge."""

from __future__ import annotations

from grandalf.graphs import Edge
from grandalf.layouts import SugiyamaLayout

from service.queries.graph.geometry import Box, Point


class Placement:
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

    def box(self, v) -> Box:
        x, y = self.xy(v)
        return Box(x, y, v.view.w, v.view.h)

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
