"""`orderstatus rules check|load|graph`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click

from service.adapters.postgres.rules import fetch_rules, replace_rules
from service.contract.rules_file import RulesFileError, load_rules_file
from service.domain.model import RuleSet
from service.entrypoints.cli.common import UserError, with_conn
from service.queries.graph.dot import render_dot
from service.queries.graph.mermaid import render_mermaid
from service.queries.graph.optional import INSTALL_HINT, svg_renderer
from service.runtime.settings import Settings


class MissingExtra(UserError):
    """An output this install cannot make (an optional extra is missing): one line, exit code 2."""

    exit_code = 2


@click.group()
def rules() -> None:
    """Check, load and draw the status rules."""


def read_rules(path: str) -> RuleSet:
    try:
        return load_rules_file(path)
    except RulesFileError as exc:
        raise UserError(f"{path}: {exc}") from None


async def stored_rules(conn) -> RuleSet:
    ruleset = await fetch_rules(conn)
    if ruleset is None:
        raise UserError("no rules are loaded; run `orderstatus rules load FILE`")
    return ruleset


@rules.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def rules_check(file: str) -> None:
    """Validate a rules file without loading it."""
    ruleset = read_rules(file)
    click.echo(f"{file}: ok ({len(ruleset.statuses)} statuses, {len(ruleset.transitions)} transitions)")


@rules.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def rules_load(settings: Settings, file: str) -> None:
    """Validate a rules file and atomically replace the stored rules with it."""
    ruleset = read_rules(file)
    sha = hashlib.sha256(Path(file).read_bytes()).hexdigest()
    version = with_conn(settings, lambda conn: replace_rules(conn, ruleset, sha))
    click.echo(f"{file}: loaded as rules version {version} ({len(ruleset.statuses)} statuses, {len(ruleset.transitions)} transitions)")


@rules.command("graph")
@click.option("--order-type", "order_type", default=None, help="Draw one order type only.")
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "svg"]), default="mermaid", show_default=True,
              help="dot is Graphviz text, for `dot -Tsvg` where Graphviz is installed.")
@click.option("-o", "output", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@click.option("--file", "rules_file", type=click.Path(dir_okay=False), default=None, help="Draw a rules file instead of the loaded rules.")
@click.pass_obj
def rules_graph(settings: Settings, order_type: str | None, fmt: str, output: str | None, rules_file: str | None) -> None:
    """Draw the state machine as Mermaid, Graphviz DOT or SVG (SVG needs the `diagrams` extra)."""
    render_svg = svg_renderer() if fmt == "svg" else None
    if fmt == "svg" and render_svg is None:
        raise MissingExtra(INSTALL_HINT)  # before any connection: nothing to draw it with
    ruleset = read_rules(rules_file) if rules_file else with_conn(settings, stored_rules)
    if order_type is not None and order_type not in ruleset.order_types:
        raise UserError(f"unknown order type {order_type!r} (known: {', '.join(sorted(ruleset.order_types))})")
    text = {"mermaid": render_mermaid, "dot": render_dot, "svg": render_svg}[fmt](ruleset, order_type)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text)


COMMANDS = [rules]
