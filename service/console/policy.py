"""Who may do what in the console (DESIGN §12, issue 21 item 6), and the session and CSRF secrets: pure.

`staff` looks, `manager` and `system` also act (redrive, retry, resend an email), `client` may not enter.
`ORDERSTATUS_CONSOLE_READ_ONLY` removes every action for everyone. Each check is made on the server for
every request, whatever the page showed.

A session is a random id in an HttpOnly, SameSite=Strict cookie; the database keeps only its SHA-256.
The CSRF token of a form is an HMAC of the fixed text `CSRF_CONTEXT` keyed by the session id: a page of
the console can print it, another site cannot compute it (it never sees the cookie), and a stolen
database row (a hash) gives neither."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from service.domain.access import Viewer, may_act_in_console, may_use_console

CSRF_CONTEXT = b"orderstatus-console-csrf-v1"
COOKIE = "orderstatus_console"


def may_enter(role: str | None) -> bool:
    """The domain's access policy (`service/domain/access.py`): staff, manager and system."""
    return role is not None and may_use_console(Viewer(role=role))


def may_act(role: str | None, read_only: bool) -> bool:
    """Actions: managers and system principals (the domain's policy), never in a read-only console."""
    return not read_only and role is not None and may_act_in_console(Viewer(role=role))


def why_not_act(role: str | None, read_only: bool) -> str | None:
    """Why this principal may not act (one sentence), None when it may."""
    if read_only:
        return "this console is read-only (ORDERSTATUS_CONSOLE_READ_ONLY): no actions for anyone"
    if not may_act(role, read_only):
        return f"the role {role!r} may look but not act (manager or system only)"
    return None


def new_secret() -> str:
    """A session id or a sign-in code: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the database keeps of a session id or a sign-in code."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def csrf_token(session_id: str) -> str:
    return hmac.new(session_id.encode("utf-8"), CSRF_CONTEXT, hashlib.sha256).hexdigest()


def csrf_ok(session_id: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(session_id), given)


def cookie_options(secure: bool, max_age_s: int) -> dict:
    """aiohttp `set_cookie` options: HttpOnly, SameSite=Strict, Secure over TLS, gone with the token."""
    return {"httponly": True, "samesite": "Strict", "secure": secure, "max_age": max(max_age_s, 0), "path": "/"}
