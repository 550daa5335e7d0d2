"""The state machine as Mermaid text (`orderstatus rules graph`, the default format)."""

from __future__ import annotations

from service.domain.model import RuleSet
from service.queries.graph.style import FLAGS, drawn_types


def render_mermaid(rules: RuleSet, order_type: str | None = None) -> str:
    lines = ["stateDiagram-v2"]
    for otype in drawn_types(rules, order_type):
        lines.append(f"    state {otype} {{")
        for status in rules.statuses_for(otype):
            flags = [f for f in FLAGS if getattr(status, f)]
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
