"""The SVG diagram is optional: its layout comes from grandalf (the `diagrams` extra), which the production
image leaves out unless built with DIAGRAMS=true (last release 2023-01, GPLv2 or EPL-1.0). `svg_renderer()`
looks for it when asked, never at import time, so the CLI and the console start without it and say what is
missing; Mermaid and DOT need nothing."""

from __future__ import annotations

from collections.abc import Callable

from service.domain.model import RuleSet

INSTALL_HINT = ("the SVG diagram needs the diagrams extra: pip install 'orderstatus[diagrams]' "
                "(or draw it with --format dot or --format mermaid)")


def svg_renderer() -> Callable[[RuleSet, str | None], str] | None:
    """`render_svg`, or None when grandalf cannot be imported (the `diagrams` extra is not installed)."""
    try:
        from service.queries.graph.svg import render_svg
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] != "grandalf":
            raise  # something else broken is a bug to see, not a missing extra
        return None
    return render_svg
