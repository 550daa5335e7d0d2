"""The console's pure rules (issue 21, DESIGN §12): who may enter and act, the read-only switch, CSRF tokens
bound to a session, the session cookie's attributes, and the server-drawn chart."""

from __future__ import annotations

import re

import pytest

from service.console import policy
from service.console.app import _safe_next, chart_svg
from service.domain.model import ROLES


class TestRoles:
    @pytest.mark.parametrize("role, enters, acts", [("client", False, False), ("staff", True, False),
                                                    ("manager", True, True), ("system", True, True),
                                                    ("admin", False, False), (None, False, False)])
    def test_staff_looks_manager_and_system_act_client_stays_out(self, role, enters, acts):
        """DESIGN §12's table, through the domain's access policy; an unknown role is neither."""
        assert policy.may_enter(role) is enters
        assert policy.may_act(role, read_only=False) is acts
        assert (policy.why_not_act(role, read_only=False) is None) is acts

    def test_the_table_covers_every_role(self):
        """Every role of the model is decided (a new role must be added to the test above)."""
        assert set(ROLES) == {"client", "staff", "manager", "system"}

    @pytest.mark.parametrize("role", ROLES)
    def test_read_only_removes_every_action_for_everyone(self, role):
        """ORDERSTATUS_CONSOLE_READ_ONLY: no role may act, and the reason names the switch."""
        assert not policy.may_act(role, read_only=True)
        assert "read-only" in policy.why_not_act(role, read_only=True)


class TestSecrets:
    def test_a_csrf_token_is_bound_to_its_session(self):
        """A session's own token passes; another session's, a missing or an altered one does not."""
        one, two = policy.new_secret(), policy.new_secret()
        token = policy.csrf_token(one)
        assert policy.csrf_ok(one, token)
        assert not policy.csrf_ok(two, token)
        assert not policy.csrf_ok(one, None) and not policy.csrf_ok(one, "")
        assert not policy.csrf_ok(one, token[:-1] + ("0" if token[-1] != "0" else "1"))

    def test_the_database_keeps_a_digest_never_the_secret(self):
        """digest() is SHA-256 hex of the secret, unlike the secret; secrets are 256 random bits."""
        secret = policy.new_secret()
        assert re.fullmatch(r"[0-9a-f]{64}", policy.digest(secret)) and secret not in policy.digest(secret)
        assert len({policy.new_secret() for _ in range(100)}) == 100

    @pytest.mark.parametrize("secure", [True, False])
    def test_the_cookie_is_httponly_strict_and_secure_over_tls(self, secure):
        """HttpOnly and SameSite=Strict always, Secure exactly when served over TLS, gone with the token."""
        options = policy.cookie_options(secure, 600)
        assert options["httponly"] and options["samesite"] == "Strict" and options["secure"] is secure
        assert options["max_age"] == 600 and policy.cookie_options(secure, -5)["max_age"] == 0


class TestPages:
    @pytest.mark.parametrize("given, expected", [("/orders/1029", "/orders/1029"), ("//evil.example", "/orders"),
                                                 ("https://evil.example/", "/orders"), ("/\\evil", "/orders"),
                                                 (None, "/orders")])
    def test_after_sign_in_only_a_path_of_the_console(self, given, expected):
        """The `next` of the sign-in form never sends the browser to another site."""
        assert _safe_next(given) == expected

    def test_a_chart_draws_one_bar_per_busy_minute_scaled_to_the_maximum(self):
        """Zero minutes draw nothing, the highest bar spans the plot, and the title says the total."""
        svg = chart_svg("emails", [(m, v) for m, v in enumerate([0] * 57 + [1, 0, 4])])
        heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]
        assert len(heights) == 2 and max(heights) == 4 * min(heights)
        assert "emails: 5 in the last hour, at most 4 a minute" in svg
