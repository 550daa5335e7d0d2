"""`orderstatus tokens issue`: sign an actor token (DESIGN §11) for operators, tests and the dev stack."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from service.contract.durations import parse_duration
from service.domain.model import ROLES
from service.entrypoints.cli.common import UserError
from service.runtime.auth import AuthConfigError, issue_token
from service.runtime.settings import Settings


def parse_ttl(text: str) -> timedelta:
    """`30m`, `1h`, `7d` … as every command reads a duration (contract.durations)."""
    try:
        return parse_duration(text)
    except ValueError:
        raise UserError(f"--ttl wants a positive duration like 30m, 1h or 7d, got {text!r}") from None


@click.group()
def tokens() -> None:
    """Actor tokens (JWT): who may act on orders."""


@tokens.command("issue")
@click.option("--sub", required=True, help="The actor's id.")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--client-id", default=None, help="Required for role client.")
@click.option("--name", default=None, help="A display name (emails show it).")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 30m, 1h, 7d …")
@click.option("--key", "key_file", type=click.Path(dir_okay=False), default=None,
              help="PEM private key (default: ORDERSTATUS_AUTH_PRIVATE_KEY_FILE).")
@click.pass_obj
def tokens_issue(settings: Settings, sub: str, role: str, client_id: str | None, name: str | None, ttl: str,
                 key_file: str | None) -> None:
    """Print a signed token for an actor, with the configured issuer and audience."""
    if role == "client" and not client_id:
        raise UserError("a client's token needs --client-id")
    path = key_file or settings.auth_private_key_file
    if not path:
        raise UserError("no signing key: give --key FILE or set ORDERSTATUS_AUTH_PRIVATE_KEY_FILE")
    try:
        pem = Path(path).read_bytes()
        token = issue_token(pem, sub=sub, role=role, client_id=client_id, name=name, ttl=parse_ttl(ttl),
                            issuer=settings.auth_issuer, audience=settings.auth_audience)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    except (AuthConfigError, ValueError, TypeError) as exc:
        raise UserError(f"{path}: not a usable private key ({exc})") from None
    click.echo(token)


COMMANDS = [tokens]
