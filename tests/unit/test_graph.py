"""Drawings of the state machine (`orderstatus rules graph`): Mermaid text and a self-contained SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from service.queries.graph.mermaid import render_mermaid
from service.queries.graph.svg import render_svg
from service.queries.graph.text import esc, shorten, text_width, wrap
from service.contract.rules_file import load_rules_file, parse_rules

SVG = "{http://www.w3.org/2000/svg}"

RULES = parse_rules(
    """
override_roles: [manager]
statuses:
  - {id: 1,  code: Draft,     name: Draft,          order_types: [SO, PO], initial: true}
  - {id: 2,  code: Confirmed, name: Confirmed,      order_types: [SO, PO]}
  - {id: 21, code: Cancelled, name: "Cancel <&> co", order_types: [SO], cancelled: true, can_override_to: true}
  - {id: 40, code: Archived,  name: Archived,       order_types: [SO], hidden: true}
transitions:
  - {order_type: SO, from: Draft,     to: Confirmed, roles: [staff, manager]}
  - {order_type: SO, from: Confirmed, to: Cancelled, roles: [client, staff]}
  - {order_type: SO, from: Confirmed, to: Archived,  roles: [manager]}
  - {order_type: PO, from: Draft,     to: Confirmed, roles: [staff]}
"""
)


class TestMermaid:
    def test_all_types(self):
        """Every order type is a composite state with its statuses, initial marker and role-labelled edges."""
        text = render_mermaid(RULES)
        lines = text.splitlines()
        assert lines[0] == "stateDiagram-v2"
        assert "    state PO {" in lines and "    state SO {" in lines
        assert lines.index("    state PO {") < lines.index("    state SO {")  # types sorted
        assert "        SO_Draft : Draft (1) [initial]" in lines
        assert "        SO_Cancelled : Cancel <&> co (21) [cancelled, can_override_to]" in lines
        assert "        SO_Archived : Archived (40) [hidden]" in lines
        assert "        [*] --> SO_Draft" in lines and "        [*] --> PO_Draft" in lines
        assert "        SO_Draft --> SO_Confirmed : manager, staff" in lines
        assert "        SO_Confirmed --> SO_Cancelled : client, staff" in lines
        assert "        PO_Draft --> PO_Confirmed : staff" in lines
        assert text.endswith("}\n")

    def test_one_type(self):
        """--order-type draws only that type's statuses and edges."""
        text = render_mermaid(RULES, "PO")
        assert "state PO {" in text and "state SO" not in text
        assert "Cancelled" not in text and "Archived" not in text
        assert text.count("-->") == 2  # the initial marker and the single PO edge

    def test_edge_count_matches_rules(self):
        """One arrow per transition plus one initial marker per type."""
        text = render_mermaid(RULES)
        assert text.count(" --> ") == len(RULES.transitions) + 2


class TestSvg:
    def test_well_formed_with_one_panel_per_type(self):
        """The SVG parses as XML, has one panel per type, a box per status and an edge per transition."""
        root = ET.fromstring(render_svg(RULES))
        assert root.tag == f"{SVG}svg"
        panels = [g.get("data-order-type") for g in root.iter(f"{SVG}g") if g.get("class") == "panel"]
        assert sorted(panels) == ["PO", "SO"]
        boxes = [g for g in root.iter(f"{SVG}g") if g.get("class") == "status"]
        assert len(boxes) == len(RULES.statuses_for("SO")) + len(RULES.statuses_for("PO"))
        edges = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("transition")]
        assert len(edges) == len(RULES.transitions)

    def test_names_are_escaped(self):
        """Status names with markup characters are escaped, so the SVG stays well formed."""
        text = render_svg(RULES)
        assert "Cancel &lt;&amp;&gt; co (21)" in text
        root = ET.fromstring(text)
        assert "Cancel <&> co (21)" in [t.text for t in root.iter(f"{SVG}text")]

    def test_flags_are_drawn(self):
        """Hidden, cancelled and override-able statuses carry their flags; the manager-only edge is styled
        apart from the client edge, and every edge is labelled with its roles."""
        root = ET.fromstring(render_svg(RULES, "SO"))
        flags = {g.get("data-code"): set((g.get("data-flags") or "").split()) for g in root.iter(f"{SVG}g")
                 if g.get("class") == "status"}
        assert "hidden" in flags["Archived"] and {"cancelled", "can_override_to"} <= flags["Cancelled"]
        assert sum(1 for r in root.iter(f"{SVG}rect") if r.get("class") == "override-ring") == 1
        edges = {g.get("data-roles"): g.get("class") for g in root.iter(f"{SVG}g")
                 if (g.get("class") or "").startswith("transition")}
        assert set(edges) == {"staff,manager", "client,staff", "manager"}
        assert edges["manager"] != edges["client,staff"]

    def test_one_type(self):
        """--order-type draws a single panel."""
        root = ET.fromstring(render_svg(RULES, "PO"))
        panels = [g.get("data-order-type") for g in root.iter(f"{SVG}g") if g.get("class") == "panel"]
        edges = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("transition")]
        assert panels == ["PO"] and len(edges) == 1

    @pytest.mark.parametrize("order_type", [None, "SO", "PO", "SC", "PC", "TR"])
    def test_sample_rules_draw(self, order_type):
        """The sample rule set draws in both formats for every type (and all types at once)."""
        rules = load_rules_file(Path(__file__).resolve().parents[2] / "service" / "devkit" / "samples" / "rules.yaml")
        ET.fromstring(render_svg(rules, order_type))
        mermaid = render_mermaid(rules, order_type)
        expected = [t for t in rules.transitions if order_type in (None, t.order_type)]
        assert mermaid.count(" --> ") == len(expected) + sum(
            1 for t in ([order_type] if order_type else rules.order_types) if rules.initial_status(t)
        )


class TestText:
    """The text module the layout sizes boxes and labels with (service/queries/graph/text.py)."""

    def test_width_sums_the_font_table_and_counts_wide_and_combining_characters(self):
        """ASCII is measured from DejaVu Sans' advances; a wide CJK character is 1 em, a combining mark 0."""
        assert text_width("I", 10) == pytest.approx(2.95) and text_width("W", 10) == pytest.approx(9.89)
        assert text_width("II", 10, bold=True) == pytest.approx(2 * 3.72)
        assert text_width("漢", 12) == pytest.approx(12.0)
        assert text_width("e\u0301", 10) == text_width("e", 10)

    def test_shorten_fits_the_limit_with_an_ellipsis_and_leaves_short_text_alone(self):
        """Text wider than the limit is cut to fit, ending in '…'; text that fits is returned unchanged."""
        assert shorten("Draft", 12, 200) == "Draft"
        cut = shorten("A very long status name indeed", 12, 80)
        assert cut.endswith("…") and text_width(cut, 12) <= 80 and len(cut) < 30

    def test_wrap_keeps_every_line_within_the_width_unless_one_word_is_wider(self):
        """Words are packed greedily into lines no wider than the width; a single long word gets its own line."""
        lines = wrap("one two three four five six seven", 11, 60)
        assert len(lines) > 1 and " ".join(lines) == "one two three four five six seven"
        assert all(text_width(line, 11) <= 60 for line in lines)
        assert wrap("supercalifragilistic x", 11, 20) == ["supercalifragilistic", "x"]

    def test_escape_replaces_characters_xml_forbids(self):
        """Quotes and markup are escaped and control characters XML 1.0 forbids become U+FFFD."""
        assert esc('a<b>&"c"\x01') == "a&lt;b&gt;&amp;&quot;c&quot;\ufffd"
