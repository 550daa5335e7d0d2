"""Safe defaults (issue 23, item 7): TLS to a database that is not on this machine, unless explicitly waived."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.runtime.settings import Settings


def _settings(url: str, **values) -> Settings:
    return Settings(database_url=url, **values)


class TestDatabaseTls:
    @pytest.mark.parametrize("url", [
        "postgresql://orderstatus@db.internal:5432/orderstatus",
        "postgresql://orderstatus@db.internal/orderstatus?sslmode=prefer",
        "postgresql://orderstatus@10.0.0.7/orderstatus?sslmode=disable",
        "postgresql://orderstatus@[2001:db8::1]:5432/orderstatus?sslmode=allow",
        "postgresql://u@localhost,db.internal/orderstatus",
        "postgresql:///orderstatus?host=db.internal",
    ])
    def test_a_remote_host_without_tls_is_refused_in_one_line(self, url):
        """A host that is not loopback with sslmode unset, prefer, allow or disable: refused, naming the opt-out."""
        with pytest.raises(ValidationError) as refused:
            _settings(url)
        (error,) = refused.value.errors()
        assert "\n" not in error["msg"]
        assert "sslmode" in error["msg"] and "ORDERSTATUS_DATABASE_ALLOW_PLAINTEXT" in error["msg"]

    def test_the_password_is_never_in_the_refusal(self):
        """The refusal names the host, never the URL's password."""
        with pytest.raises(ValidationError) as refused:
            _settings("postgresql://orderstatus:hunter2secret@db.internal/orderstatus")
        assert "hunter2secret" not in str(refused.value)

    @pytest.mark.parametrize("url", [
        "postgresql://orderstatus@db.internal/orderstatus?sslmode=verify-full&sslrootcert=/etc/ca.crt",
        "postgresql://orderstatus@db.internal/orderstatus?sslmode=require",
        "postgresql://orderstatus@db.internal/orderstatus?sslmode=verify-ca",
        "postgresql://postgres@localhost:5432/orderstatus",
        "postgresql://postgres@127.0.0.1:5432/orderstatus",
        "postgresql://postgres@[::1]:5432/orderstatus",
        "postgresql:///orderstatus?host=/var/run/postgresql",
    ])
    def test_tls_or_loopback_starts(self, url):
        """TLS required or verified, or a loopback host or Unix socket: accepted."""
        assert _settings(url).database_url.get_secret_value() == url

    def test_the_explicit_opt_out_lets_a_private_network_start(self):
        """ORDERSTATUS_DATABASE_ALLOW_PLAINTEXT=true (docker-compose's private network) accepts a remote plaintext host."""
        settings = _settings("postgresql://postgres:postgres@postgres:5432/orderstatus", database_allow_plaintext=True)
        assert settings.database_allow_plaintext

    def test_the_environment_is_read_too(self, monkeypatch):
        """The variables from the environment: refused without the opt-out, accepted with it."""
        monkeypatch.setenv("ORDERSTATUS_DATABASE_URL", "postgresql://postgres@postgres:5432/orderstatus")
        with pytest.raises(ValidationError):
            Settings()
        monkeypatch.setenv("ORDERSTATUS_DATABASE_ALLOW_PLAINTEXT", "true")
        assert Settings().database_allow_plaintext
