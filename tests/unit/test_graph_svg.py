"""The layered SVG of `orderstatus rules graph --format svg`, read back as XML and measured.

The drawing is checked as geometry, not compared with a stored picture: boxes and labels must not
overlap, every edge must run from its source box to its target box without crossing another box or
label, every transition must carry its roles, and the markings must match the legend.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from service.contract.rules_file import load_rules_file, parse_rules
from service.domain.model import ROLES, RuleSet, Status, Transition
from service.entrypoints.cli.main import main
from service.queries.graph.mermaid import render_mermaid
from service.queries.graph.optional import INSTALL_HINT, svg_renderer
from service.queries.graph.svg import render_svg

NS = "{http://www.w3.org/2000/svg}"
REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "service" / "devkit" / "samples" / "rules.yaml"
FLAGS = ("initial", "cancelled", "invoiced", "hidden", "can_override_to")

FLAGGED = parse_rules(
    """
override_roles: [manager]
statuses:
  - {id: 1,  code: Draft,     name: Draft,           order_types: [SO, PO], initial: true}
  - {id: 2,  code: Confirmed, name: Confirmed,       order_types: [SO, PO]}
  - {id: 21, code: Cancelled, name: "Cancel <&> co", order_types: [SO], cancelled: true, can_override_to: true}
  - {id: 30, code: Invoiced,  name: Invoiced,        order_types: [SO], invoiced: true}
  - {id: 40, code: Archived,  name: Archived,        order_types: [SO], hidden: true}
transitions:
  - {order_type: SO, from: Draft,     to: Confirmed, roles: [staff, manager]}
  - {order_type: SO, from: Confirmed, to: Cancelled, roles: [client, staff]}
  - {order_type: SO, from: Confirmed, to: Invoiced,  roles: [system]}
  - {order_type: SO, from: Invoiced,  to: Archived,  roles: [manager]}
  - {order_type: PO, from: Draft,     to: Confirmed, roles: [staff]}
"""
)


def synthetic_rules(seed: int) -> RuleSet:
    """15 statuses of type XX: a spine 1..12 plus random extra edges (cycles, long jumps), a separate
    2-cycle 13<->14, an isolated status 15, every flag; and a small second type YY sharing statuses."""
    rnd = random.Random(seed)
    flags = {1: {"initial": True}, 5: {"cancelled": True, "can_override_to": True}, 9: {"invoiced": True},
             12: {"hidden": True}, 7: {"can_override_to": True}, 15: {"can_override_to": True}}
    statuses = tuple(
        Status(
            id=i,
            code=f"S{i}",
            name=("Waiting for a very long external approval" if i == 4 else f"Status number {i}"),
            order_types=frozenset({"XX", "YY"} if i <= 3 else {"XX"}),
            **flags.get(i, {}),
        )
        for i in range(1, 16)
    )
    edges: dict[tuple[int, int], frozenset[str]] = {}

    def roles() -> frozenset[str]:
        return frozenset(rnd.sample(ROLES, rnd.randint(1, 4)))

    for i in range(1, 12):
        edges[(i, i + 1)] = roles()
    while len(edges) < 40:
        a, b = rnd.randint(1, 12), rnd.randint(1, 12)
        if a != b:
            edges.setdefault((a, b), roles())
    edges[(13, 14)] = frozenset({"client"})
    edges[(14, 13)] = frozenset({"manager"})
    transitions = [Transition("XX", a, b, r) for (a, b), r in edges.items()]
    transitions += [Transition("YY", 1, 2, frozenset({"staff"})), Transition("YY", 2, 3, frozenset({"manager"})),
                    Transition("YY", 3, 1, frozenset({"client", "staff"}))]
    return RuleSet(statuses=statuses, transitions=tuple(transitions), override_roles=frozenset({"manager", "system"}))


# --- reading the SVG back


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float

    @classmethod
    def of(cls, el: ET.Element) -> Rect:
        return cls(*(float(el.get(k)) for k in ("x", "y", "width", "height")))

    def overlaps(self, other: Rect) -> bool:
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)

    def contains(self, p: tuple[float, float], margin: float = 0.0) -> bool:
        return (self.x + margin < p[0] < self.x + self.w - margin
                and self.y + margin < p[1] < self.y + self.h - margin)

    def inside(self, other: Rect) -> bool:
        return (other.x <= self.x and self.x + self.w <= other.x + other.w
                and other.y <= self.y and self.y + self.h <= other.y + other.h)

    def on_border(self, p: tuple[float, float], tol: float = 0.6) -> bool:
        x0, y0, x1, y1 = self.x, self.y, self.x + self.w, self.y + self.h
        within_x, within_y = x0 - tol <= p[0] <= x1 + tol, y0 - tol <= p[1] <= y1 + tol
        return (within_x and (abs(p[1] - y0) <= tol or abs(p[1] - y1) <= tol)) or (
            within_y and (abs(p[0] - x0) <= tol or abs(p[0] - x1) <= tol)
        )


def path_points(d: str, per_segment: int = 24) -> list[tuple[float, float]]:
    """Points along an SVG path made of absolute M, L and C commands (all the renderer emits)."""
    tokens = re.findall(r"[A-Za-z]|-?\d+(?:\.\d+)?", d)
    points: list[tuple[float, float]] = []
    i, current = 0, (0.0, 0.0)

    def take(n: int) -> list[tuple[float, float]]:
        nonlocal i
        nums = [float(t) for t in tokens[i : i + 2 * n]]
        i += 2 * n
        return [(nums[k], nums[k + 1]) for k in range(0, 2 * n, 2)]

    while i < len(tokens):
        cmd = tokens[i]
        i += 1
        if cmd == "M":
            (current,) = take(1)
            points.append(current)
        elif cmd == "L":
            (end,) = take(1)
            points += [(current[0] + (end[0] - current[0]) * k / per_segment,
                        current[1] + (end[1] - current[1]) * k / per_segment) for k in range(1, per_segment + 1)]
            current = end
        elif cmd == "C":
            c1, c2, end = take(3)
            for k in range(1, per_segment + 1):
                t = k / per_segment
                a, b, c, e = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
                points.append((a * current[0] + b * c1[0] + c * c2[0] + e * end[0],
                               a * current[1] + b * c1[1] + c * c2[1] + e * end[1]))
            current = end
        else:
            raise AssertionError(f"unexpected path command {cmd!r} in {d!r}")
    return points


@dataclass
class Drawn:
    """One panel of the drawing, as measured from the SVG."""

    order_type: str
    frame: Rect
    outer: dict[int, Rect]  # status id -> everything the status occupies (its override ring included)
    box: dict[int, Rect]  # status id -> the box itself
    groups: dict[int, ET.Element]
    edges: list[ET.Element]  # the <g class="transition"> elements
    start: ET.Element | None


def classes(el: ET.Element) -> set[str]:
    return set((el.get("class") or "").split())


def only(el: ET.Element, cls: str) -> ET.Element:
    found = [e for e in el.iter() if cls in classes(e)]
    assert len(found) == 1, f"expected one {cls}, found {len(found)}"
    return found[0]


def read(svg: str) -> tuple[ET.Element, dict[str, Drawn]]:
    root = ET.fromstring(svg)
    panels = {}
    for panel in root.iter(f"{NS}g"):
        if "panel" not in classes(panel):
            continue
        outer, box, groups = {}, {}, {}
        for g in panel.iter(f"{NS}g"):
            if "status" in classes(g):
                sid = int(g.get("data-status-id"))
                box[sid] = Rect.of(only(g, "status-box"))
                rings = [e for e in g if "override-ring" in classes(e)]
                outer[sid] = Rect.of(rings[0]) if rings else box[sid]
                groups[sid] = g
        edges = [g for g in panel.iter(f"{NS}g") if "transition" in classes(g)]
        starts = [g for g in panel.iter(f"{NS}g") if "start" in classes(g)]
        panels[panel.get("data-order-type")] = Drawn(
            panel.get("data-order-type"), Rect.of(only(panel, "panel-frame")), outer, box, groups, edges,
            starts[0] if starts else None,
        )
    return root, panels


def label_rect(edge: ET.Element) -> Rect:
    return Rect.of(only(edge, "edge-label-box"))


def edge_path(edge: ET.Element) -> ET.Element:
    return only(edge, "edge")


def kind_of(roles: set[str]) -> str:
    """The test's own reading of the brief: manager-only, else client, else staff."""
    if roles <= {"manager", "system"}:
        return "manager"
    return "client" if "client" in roles else "staff"


RULE_SETS = {
    "sample": load_rules_file(SAMPLE),
    "flagged": FLAGGED,
    **{f"synthetic-{seed}": synthetic_rules(seed) for seed in (1, 2, 3)},
}


# --- the tests


class TestLayout:
    @pytest.mark.parametrize("name", RULE_SETS)
    def test_no_two_boxes_or_labels_overlap(self, name):
        """In every panel no two status boxes, edge labels or a box and a label overlap, and all sit inside the panel."""
        _, panels = read(render_svg(RULE_SETS[name]))
        for p in panels.values():
            things = [(f"status {sid}", r) for sid, r in p.outer.items()]
            things += [(f"label {e.get('data-from')}->{e.get('data-to')}", label_rect(e)) for e in p.edges]
            for k, (a_name, a) in enumerate(things):
                assert a.inside(p.frame), f"{p.order_type}: {a_name} leaves its panel"
                for b_name, b in things[k + 1 :]:
                    assert not a.overlaps(b), f"{p.order_type}: {a_name} {a} overlaps {b_name} {b}"

    def test_synthetic_set_is_as_big_as_promised(self):
        """The synthetic rule set really has 15 statuses and dozens of edges with cycles (so the layout test means something)."""
        rules = synthetic_rules(1)
        xx = [t for t in rules.transitions if t.order_type == "XX"]
        assert len(rules.statuses_for("XX")) == 15 and len(xx) >= 40
        assert any(rules.edge_roles("XX", t.to_id, t.from_id) for t in xx)  # at least one 2-cycle

    @pytest.mark.parametrize("name", RULE_SETS)
    def test_panels_do_not_overlap(self, name):
        """The order-type panels and the legend are laid out apart from each other."""
        root, panels = read(render_svg(RULE_SETS[name]))
        frames = [p.frame for p in panels.values()]
        for k, a in enumerate(frames):
            for b in frames[k + 1 :]:
                assert not a.overlaps(b)
        width, height = float(root.get("width")), float(root.get("height"))
        for f in frames:
            assert f.inside(Rect(0, 0, width, height))
        legend_bottom = max(float(t.get("y")) for t in only(root, "legend").iter(f"{NS}text"))
        assert all(f.y > legend_bottom for f in frames)

    @pytest.mark.parametrize("name", RULE_SETS)
    def test_edges_join_their_statuses_and_cross_nothing(self, name):
        """Each edge starts on its source box, ends on its target box, and runs across no box and no other label."""
        _, panels = read(render_svg(RULE_SETS[name]))
        for p in panels.values():
            labels = [label_rect(e) for e in p.edges]
            for k, edge in enumerate(p.edges):
                src, dst = int(edge.get("data-from")), int(edge.get("data-to"))
                points = path_points(edge_path(edge).get("d"))
                assert p.box[src].on_border(points[0]), f"{p.order_type} {src}->{dst} does not start on {src}"
                assert p.box[dst].on_border(points[-1]), f"{p.order_type} {src}->{dst} does not end on {dst}"
                for pt in points:
                    for sid, r in p.box.items():
                        assert not r.contains(pt, margin=1.0), f"{p.order_type} {src}->{dst} crosses status {sid}"
                    for j, r in enumerate(labels):
                        if j != k:
                            assert not r.contains(pt, margin=1.0), f"{p.order_type} {src}->{dst} crosses a label"
                assert any(labels[k].contains(pt) for pt in points), f"{p.order_type} {src}->{dst} misses its label"

    @pytest.mark.subprocess
    def test_same_input_same_drawing_in_another_process(self):
        """The layout is deterministic: two processes with different hash seeds write the same bytes."""
        code = (
            "import sys; from service.contract.rules_file import load_rules_file;"
            "from service.queries.graph.svg import render_svg;"
            f"sys.stdout.write(render_svg(load_rules_file({str(SAMPLE)!r})))"
        )
        outs = []
        for seed in ("1", "2"):
            env = {**os.environ, "PYTHONHASHSEED": seed}
            done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
            outs.append(done.stdout)
        assert outs[0] == outs[1] and outs[0].startswith("<svg")


class TestContent:
    @pytest.mark.parametrize("name", RULE_SETS)
    def test_every_transition_is_one_edge_labelled_with_its_roles(self, name):
        """Each transition is drawn exactly once, in its type's panel, with an arrowhead and its roles as the label."""
        rules = RULE_SETS[name]
        _, panels = read(render_svg(rules))
        for otype, p in panels.items():
            expected = {(t.from_id, t.to_id): t.roles for t in rules.transitions if t.order_type == otype}
            drawn = {}
            for edge in p.edges:
                key = (int(edge.get("data-from")), int(edge.get("data-to")))
                assert key not in drawn, f"{otype} {key} drawn twice"
                label = only(edge, "edge-label").text
                drawn[key] = frozenset(label.split(", "))
                assert edge_path(edge).get("marker-end", "").startswith("url(#")
            assert drawn == expected

    def test_one_panel_per_order_type(self):
        """All types get a panel each (sorted); --order-type draws only that type's panel and statuses."""
        rules = RULE_SETS["sample"]
        _, panels = read(render_svg(rules))
        assert list(panels) == sorted(rules.order_types)
        for otype, p in panels.items():
            assert set(p.box) == {s.id for s in rules.statuses_for(otype)}
        _, one = read(render_svg(rules, "TR"))
        assert list(one) == ["TR"] and set(one["TR"].box) == {s.id for s in rules.statuses_for("TR")}

    def test_legend_lists_edge_kinds_and_status_markings(self):
        """The legend has a sample of each edge kind, styled as the edges are, and a sample of each status marking."""
        root, panels = read(render_svg(RULE_SETS["sample"]))
        legend = only(root, "legend")
        for kind in ("client", "staff", "manager"):
            sample = only(legend, f"legend-edge-{kind}").find(f"{NS}path")
            for edge in (e for p in panels.values() for e in p.edges):
                if kind_of(set(edge.get("data-roles").split(","))) == kind:
                    drawn = edge_path(edge)
                    assert (drawn.get("stroke"), drawn.get("stroke-dasharray")) == (
                        sample.get("stroke"), sample.get("stroke-dasharray"))
        for flag in FLAGS:
            only(legend, f"legend-status-{flag}")
        text = " ".join(t.text for t in legend.iter(f"{NS}text"))
        assert "manager, system" in text  # who may override, from the rules

    @pytest.mark.parametrize("name", ["sample", "synthetic-1"])
    def test_manager_only_edges_look_different_from_client_edges(self, name):
        """Edges of one kind share one style, and manager-only, client and staff edges differ in colour and dash."""
        _, panels = read(render_svg(RULE_SETS[name]))
        styles: dict[str, set] = {}
        for edge in (e for p in panels.values() for e in p.edges):
            path = edge_path(edge)
            kind = kind_of(set(edge.get("data-roles").split(",")))
            styles.setdefault(kind, set()).add((path.get("stroke"), path.get("stroke-dasharray")))
        assert set(styles) == {"client", "staff", "manager"}
        assert all(len(s) == 1 for s in styles.values())
        (client,), (manager,), (staff,) = styles["client"], styles["manager"], styles["staff"]
        assert client[0] != manager[0] and client[1] != manager[1]  # colour and dash
        assert len({client[0], manager[0], staff[0]}) == 3

    def test_status_flags_are_marked(self):
        """Initial, cancelled, invoiced, hidden and override-target statuses each carry their own marking, plain ones none."""
        _, panels = read(render_svg(FLAGGED, "SO"))
        p = panels["SO"]
        box = {sid: only(g, "status-box") for sid, g in p.groups.items()}
        words = {sid: (next((e.text for e in g.iter() if "status-flags" in classes(e)), "") or "")
                 for sid, g in p.groups.items()}
        fills = {sid: b.get("fill") for sid, b in box.items()}
        # each flag's words appear on exactly the statuses that have it
        assert words == {1: "initial", 2: "", 21: "cancelled · override target", 30: "invoiced", 40: "hidden"}
        # fills tell initial, cancelled, invoiced and plain apart
        assert len({fills[1], fills[21], fills[30], fills[2]}) == 4 and fills[40] == fills[2]
        # hidden: dashed; override target: an outer ring; nothing else has either
        assert {sid for sid, b in box.items() if b.get("stroke-dasharray")} == {40}
        assert {sid for sid in p.groups if p.outer[sid] != p.box[sid]} == {21}
        # initial: the start dot's arrow ends on the initial status
        start = path_points(p.start.find(f"{NS}path").get("d"))
        assert p.box[1].on_border(start[-1])
        assert p.groups[1].get("data-flags") == "initial"

    def test_text_is_escaped_and_cleaned(self):
        """Markup characters and quotes are escaped and control characters replaced, so the SVG stays well formed."""
        rules = RuleSet(
            statuses=(
                Status(1, 'A"<b>&\'', "Tom & <Jerry> \"quoted\" 'single'", frozenset({"Q&A"}), initial=True),
                Status(2, "B", "bell\x07 and \x01", frozenset({"Q&A"})),
            ),
            transitions=(Transition("Q&A", 1, 2, frozenset({"client"})),),
            override_roles=frozenset(),
        )
        svg = render_svg(rules)
        root, panels = read(svg)
        texts = [t.text for t in root.iter(f"{NS}text")]
        assert "Tom & <Jerry> \"quoted\" 'single' (1)" in texts
        assert "bell\ufffd and \ufffd (2)" in texts
        assert list(panels) == ["Q&A"] and "Q&A" in texts
        assert "<Jerry>" not in svg and "<b>" not in svg

    def test_long_names_are_shortened_with_the_full_name_in_a_tooltip(self):
        """A 200-character name is cut with an ellipsis so its box stays narrow; the tooltip keeps the whole name."""
        long_name = "Very long status name " * 9
        rules = RuleSet(
            statuses=(Status(1, "A", long_name, frozenset({"SO"}), initial=True), Status(2, "B", "B", frozenset({"SO"}))),
            transitions=(Transition("SO", 1, 2, frozenset({"staff"})),),
            override_roles=frozenset(),
        )
        _, panels = read(render_svg(rules))
        group = panels["SO"].groups[1]
        assert panels["SO"].box[1].w < 320
        assert only(group, "status-name").text.endswith("…")
        assert long_name in group.find(f"{NS}title").text

    def test_self_contained(self):
        """No scripts, stylesheets, external fonts or links: only internal url(#…) references."""
        svg = render_svg(RULE_SETS["sample"])
        root = ET.fromstring(svg)
        tags = {el.tag.removeprefix(NS) for el in root.iter()}
        assert not tags & {"script", "style", "image", "foreignObject", "a", "use"}
        assert "@import" not in svg and "@font-face" not in svg and "http://" not in svg.replace(
            'xmlns="http://www.w3.org/2000/svg"', "")
        assert set(re.findall(r"url\(([^)]*)\)", svg)) <= {f"#{m.get('id')}" for m in root.iter(f"{NS}marker")}

    def test_a_self_loop_in_a_hand_built_rule_set_still_draws(self):
        """The rules file refuses self-loops, but a RuleSet built in code with one still draws it as a labelled edge."""
        rules = RuleSet(
            statuses=(Status(1, "A", "A", frozenset({"SO"}), initial=True), Status(2, "B", "B", frozenset({"SO"}))),
            transitions=(Transition("SO", 1, 2, frozenset({"staff"})), Transition("SO", 2, 2, frozenset({"manager"}))),
            override_roles=frozenset(),
        )
        _, panels = read(render_svg(rules))
        loop = next(e for e in panels["SO"].edges if e.get("data-from") == e.get("data-to") == "2")
        points = path_points(edge_path(loop).get("d"))
        assert panels["SO"].box[2].on_border(points[0]) and panels["SO"].box[2].on_border(points[-1])


class TestCommandLine:
    def test_rules_graph_svg_from_a_file(self, tmp_path):
        """`orderstatus rules graph --format svg --file F -o OUT` writes the layered drawing; Mermaid output is unchanged."""
        out = tmp_path / "graph.svg"
        result = CliRunner().invoke(main, ["rules", "graph", "--format", "svg", "--file", str(SAMPLE), "-o", str(out)])
        assert result.exit_code == 0, result.output
        _, panels = read(out.read_text(encoding="utf-8"))
        assert set(panels) == set(RULE_SETS["sample"].order_types)
        result = CliRunner().invoke(main, ["rules", "graph", "--file", str(SAMPLE)])
        assert result.exit_code == 0 and result.output == render_mermaid(RULE_SETS["sample"]) + "\n"

    @pytest.mark.subprocess
    def test_svg_without_the_diagrams_extra_says_how_to_get_it(self):
        """With grandalf unimportable, `rules graph --format svg` exits 2 with one line naming the extra; dot still draws."""

        def graph(fmt: str) -> subprocess.CompletedProcess:
            code = ("import sys; sys.modules['grandalf'] = None; from service.entrypoints.cli.main import main;"
                    f"main(['rules', 'graph', '--format', {fmt!r}, '--file', {str(SAMPLE)!r}])")
            return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)

        svg = graph("svg")
        assert (svg.returncode, svg.stdout, svg.stderr.splitlines()) == (2, "", [f"Error: {INSTALL_HINT}"])
        assert "pip install 'orderstatus[diagrams]'" in svg.stderr
        dot = graph("dot")
        assert dot.returncode == 0 and dot.stdout.startswith("digraph orderstatus {"), dot.stderr

    def test_the_svg_renderer_is_found_where_grandalf_is_installed(self):
        """In the development environment (the diagrams extra installed) the lookup gives render_svg itself."""
        assert svg_renderer() is render_svg

    def test_another_import_failure_is_not_taken_for_the_missing_extra(self, monkeypatch):
        """Only grandalf's absence means "no diagrams": any other failed import is raised, as the bug it is."""
        monkeypatch.setitem(sys.modules, "service.queries.graph.svg", None)
        with pytest.raises(ImportError, match="service.queries.graph.svg"):
            svg_renderer()
