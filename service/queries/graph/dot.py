"""The state machine as Graphviz DOT text (`orderstatus rules graph --format dot`): no layout here, so no
dependency; `dot -Tsvg` draws it where Graphviz is installed."""

from __future__ import annotations

from service.domain.model import RuleSet
from service.queries.graph.style import FLAGS, drawn_types


def quote(text: str) -> str:
    """A DOT double-quoted ID: backslashes and double quotes escaped, newlines as spaces."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def node_id(order_type: str, code: str) -> str:
    return quote(f"{order_type}_{code}")


def render_dot(rules: RuleSet, order_type: str | None = None) -> str:
    lines = ["digraph orderstatus {", "    rankdir=TB;", "    node [shape=box, style=rounded];"]
    for otype in drawn_types(rules, order_type):
        lines.append(f"    subgraph {quote('cluster_' + otype)} {{")
        lines.append(f"        label={quote(otype)};")
        for status in rules.statuses_for(otype):
            flags = [f for f in FLAGS if getattr(status, f)]
            label = f"{status.name} ({status.id})" + (f" [{', '.join(flags)}]" if flags else "")
            lines.append(f"        {node_id(otype, status.code)} [label={quote(label)}];")
        for t in rules.transitions:
            if t.order_type == otype:
                src, dst = rules.status(t.from_id), rules.status(t.to_id)
                lines.append(f"        {node_id(otype, src.code)} -> {node_id(otype, dst.code)}"
                             f" [label={quote(', '.join(sorted(t.roles)))}];")
        lines.append("    }")
    lines.append("}")
    return "\n".join(lines) + "\n"
