"""`orderstatus rules graph --format dot`: Graphviz DOT text, read back by a small parser."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from service.contract.rules_file import parse_rules
from service.queries.graph.dot import quote, render_dot

RULES = parse_rules(
    """
override_roles: [manager]
statuses:
  - {id: 1,  code: Draft,     name: Draft,                order_types: [SO, PO], initial: true}
  - {id: 2,  code: Confirmed, name: "Say \\"yes\\" \\\\ ok", order_types: [SO, PO]}
  - {id: 21, code: Cancelled, name: Cancelled,            order_types: [SO], cancelled: true}
  - {id: 40, code: Lonely,    name: Lonely,               order_types: [SO], hidden: true}
transitions:
  - {order_type: SO, from: Draft,     to: Confirmed, roles: [staff, manager]}
  - {order_type: SO, from: Confirmed, to: Cancelled, roles: [client, staff]}
  - {order_type: PO, from: Draft,     to: Confirmed, roles: [staff]}
"""
)

ID = r'"(?:[^"\\]|\\.)*"'
NODE = re.compile(rf"^\s*({ID}) \[label=({ID})\];$")
EDGE = re.compile(rf"^\s*({ID}) -> ({ID}) \[label=({ID})\];$")


def unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def parse(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Nodes (id -> label) and edges (from, to, label); every line must be known DOT or the parse fails."""
    lines = text.splitlines()
    assert lines[0] == "digraph orderstatus {" and lines[-1] == "}"
    assert text.count("{") == text.count("}")
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for line in lines[1:-1]:
        if m := EDGE.match(line):
            edges.append(tuple(unquote(g) for g in m.groups()))
        elif m := NODE.match(line):
            nodes[unquote(m.group(1))] = unquote(m.group(2))
        else:
            assert re.match(rf"^\s*(rankdir=TB;|node \[.*\];|subgraph {ID} \{{|label={ID};|\}})$", line), line
    return nodes, edges


class TestDot:
    def test_every_status_a_node_every_transition_an_edge(self):
        """Each status of each order type is one node and each transition one edge between two of them."""
        nodes, edges = parse(render_dot(RULES))
        assert set(nodes) == {f"{t}_{s.code}" for t in RULES.order_types for s in RULES.statuses_for(t)}
        assert sorted(edges) == sorted(
            (f"{t.order_type}_{RULES.status(t.from_id).code}", f"{t.order_type}_{RULES.status(t.to_id).code}",
             ", ".join(sorted(t.roles)))
            for t in RULES.transitions)
        assert all(a in nodes and b in nodes for a, b, _ in edges)

    def test_one_order_type(self):
        """--order-type draws that type's statuses and transitions only."""
        nodes, edges = parse(render_dot(RULES, "PO"))
        assert set(nodes) == {"PO_Draft", "PO_Confirmed"}
        assert edges == [("PO_Draft", "PO_Confirmed", "staff")]

    def test_labels_carry_id_and_flags_and_survive_quotes(self):
        """A label holds the name, id and flags; quotes and backslashes in a name are escaped, not cut."""
        nodes, _ = parse(render_dot(RULES, "SO"))
        assert nodes["SO_Draft"] == "Draft (1) [initial]"
        assert nodes["SO_Confirmed"] == 'Say "yes" \\ ok (2)'
        assert nodes["SO_Lonely"] == "Lonely (40) [hidden]"
        assert quote('a"b\\c\nd') == '"a\\"b\\\\c d"'



RULES_FILE = """
statuses:
  - {id: 1, code: Draft,     name: Draft,     order_types: [SO], initial: true}
  - {id: 2, code: Confirmed, name: Confirmed, order_types: [SO]}
transitions:
  - {order_type: SO, from: Draft, to: Confirmed, roles: [staff]}
"""


class TestCommand:
    @pytest.mark.subprocess
    def test_rules_graph_format_dot(self, tmp_path):
        """`orderstatus rules graph --file F --format dot` prints DOT with the file's statuses and transitions."""
        path = tmp_path / "rules.yaml"
        path.write_text(RULES_FILE)
        result = subprocess.run([str(Path(sys.executable).with_name("orderstatus")), "rules", "graph",
                                 "--file", str(path), "--format", "dot"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        nodes, edges = parse(result.stdout.rstrip("\n"))
        assert set(nodes) == {"SO_Draft", "SO_Confirmed"}
        assert edges == [("SO_Draft", "SO_Confirmed", "staff")]
