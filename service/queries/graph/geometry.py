"""Sizes and spacings of the drawing, and the shapes the layout works with (boxes, vertex views, paths)."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.domain.model import Status


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
class View:
    """What grandalf reads (w, h) and writes (xy, the centre) for a vertex."""

    w: float
    h: float
    xy: tuple[float, float] = (0.0, 0.0)


@dataclass
class Node:
    kind: str  # "status", "label" or "start"
    view: View
    status: Status | None = None
    index: int = -1  # the transition of a label node


@dataclass
class Box:
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

    def moved(self, dx: float, dy: float) -> Box:
        return Box(self.x + dx, self.y + dy, self.w, self.h)


Point = tuple[float, float]


@dataclass
class Path:
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
