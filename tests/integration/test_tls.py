"""TLS everywhere, secrets never printed: Postgres over `sslmode=verify-full` (pools, one-shot connections and
the migrations) against a real TLS-only server, SMTP credentials only over STARTTLS against a real aiosmtpd
sink that requires AUTH, and no password in any output. Certificates are a throwaway CA made here."""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
import subprocess
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from service.adapters.postgres.connection import create_pool, migrate
from service.adapters.smtp import Mailer, PlaintextCredentials, SmtpUnavailable
from service.devkit.embedded import EmbeddedPostgres, SmtpSink, scratch_dir
from service.runtime.settings import Settings
from tests.helpers.cli import ok, run_cli, run_cli_async, start_cli, user_error
from tests.helpers.pki import certificate, pem
from tests.helpers.waiting import wait_until

DB_PASSWORD = f"db-pw-{secrets.token_hex(8)}"
SMTP_PASSWORD = f"smtp-pw-{secrets.token_hex(8)}"


# -- a throwaway PKI ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    wrong_ca_cert: Path  # a CA that did not sign the server's certificate
    server_cert: Path
    server_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, wrong_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    paths = Pki(folder / "ca.crt", folder / "wrong-ca.crt", folder / "server.crt", folder / "server.key")
    paths.ca_cert.write_bytes(pem(certificate("test CA", ca_key, "test CA", ca_key, ca=True)))
    paths.wrong_ca_cert.write_bytes(pem(certificate("other CA", wrong_key, "other CA", wrong_key, ca=True)))
    paths.server_cert.write_bytes(pem(certificate("127.0.0.1", server_key, "test CA", ca_key, ca=False)))
    paths.server_key.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    paths.server_key.chmod(0o600)
    return paths


# -- servers --------------------------------------------------------------------------------------------------

def _url(server: EmbeddedPostgres, database: str, password: str = DB_PASSWORD, **query: str) -> str:
    params = "&".join(f"{key}={value}" for key, value in query.items())
    return f"postgresql://postgres:{password}@127.0.0.1:{server.port}/{database}" + (f"?{params}" if params else "")


def _refused_certificates(log: str) -> int:
    """How many lines of a log report a failed certificate verification."""
    return sum(1 for line in log.lower().splitlines()
               if "certificate verify failed" in line or "certificate_verify_failed" in line)


def _verified(server: EmbeddedPostgres, database: str, ca: Path, **extra: str) -> str:
    return _url(server, database, sslmode="verify-full", sslrootcert=str(ca), **extra)


async def _accept_only_tls_with_a_password(server: EmbeddedPostgres, ca: Path) -> None:
    """Give `postgres` a password, then let pg_hba.conf accept only TLS connections that know it."""
    conn = await asyncpg.connect(_verified(server, "postgres", ca))
    try:
        await conn.execute(f"ALTER ROLE postgres PASSWORD '{DB_PASSWORD}'")
        (server.data_dir / "pgdata" / "pg_hba.conf").write_text(
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()

    async def plaintext_refused() -> bool:
        try:
            plain = await asyncpg.connect(_url(server, "postgres", sslmode="disable"))
        except asyncpg.InvalidAuthorizationSpecificationError:
            return True
        await plain.close()
        return False

    # the reload is asynchronous: wait until plaintext is refused
    await wait_until(plaintext_refused, 10, "pg_hba.conf's reload (a plaintext connection refused)", interval=0.1)


@pytest.fixture(scope="module")
def tls_postgres(pki):
    """A real PostgreSQL with ssl=on that refuses any connection without TLS and a password."""
    server = EmbeddedPostgres(scratch_dir("orderstatus-test-tls-pg-"), ssl_cert_file=pki.server_cert,
                              ssl_key_file=pki.server_key).start()
    try:
        asyncio.run(_accept_only_tls_with_a_password(server, pki.ca_cert))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def plain_postgres():
    """A real PostgreSQL without TLS (its own: the session's server might be an external one with TLS)."""
    server = EmbeddedPostgres(scratch_dir("orderstatus-test-plain-pg-")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_smtp(pki):
    """An aiosmtpd sink offering STARTTLS and requiring AUTH (accepted over TLS only) before MAIL."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    sink = SmtpSink(tls_context=context, credentials={"mailer": SMTP_PASSWORD}).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def smtp(tls_smtp) -> SmtpSink:
    """The TLS sink, emptied for this test."""
    assert tls_smtp.mailbox is not None
    with tls_smtp.mailbox.lock:
        tls_smtp.mailbox.messages.clear()
    tls_smtp.logins.clear()
    return tls_smtp


def _env(**settings: str) -> dict[str, str]:
    """The environment of a subprocess: ours without any ORDERSTATUS_ variable, plus `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ORDERSTATUS_")}
    env.update({f"ORDERSTATUS_{key.upper()}": value for key, value in settings.items()})
    return env


def _mail_settings(smtp: SmtpSink, ca: Path, **overrides) -> Settings:
    return Settings(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=True, smtp_username="mailer",
                    smtp_password=SMTP_PASSWORD, smtp_cafile=str(ca), smtp_timeout_s=10, **overrides)


def _message(subject: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "orders@localhost", "ann@example.com", subject
    message.set_content("Your order 1029 is now Cancelled.")
    return message.as_bytes()


# -- Postgres -------------------------------------------------------------------------------------------------

class TestPostgresTls:
    async def test_verify_full_with_the_right_ca_migrates_and_queries_over_tls(self, tls_postgres, pki):
        """verify-full with the right CA: `orderstatus migrate` succeeds on a TLS-only server and a pool's
        session is encrypted; the output never shows the password."""
        url = _verified(tls_postgres, "orderstatus", pki.ca_cert)
        result = ok(await run_cli_async(_env(database_url=url), "migrate"))
        assert DB_PASSWORD not in result.stdout + result.stderr
        pool = await create_pool(url)
        try:
            assert await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
            assert await pool.fetchval("SELECT count(*) FROM alembic_version") == 1
        finally:
            await pool.close()

    def test_the_migrations_own_connection_verifies_the_server(self, tls_postgres, pki):
        """On the `postgres` database ensure_database opens no connection, so only alembic's connection meets
        the wrong CA, and it refuses: the migrations honour sslmode and sslrootcert themselves."""
        with pytest.raises(ssl.SSLCertVerificationError):
            migrate(_verified(tls_postgres, "postgres", pki.wrong_ca_cert))

    async def test_a_wrong_ca_is_refused_in_one_line(self, tls_postgres, pki):
        """A CA that did not sign the server's certificate: migrate and a one-shot query fail with one line
        saying the certificate failed verification (no password, no traceback), and a pool does not open."""
        env = _env(database_url=_verified(tls_postgres, "orderstatus", pki.wrong_ca_cert))
        line = user_error(await run_cli_async(env, "migrate"),
                          "migration failed", "SSLCertVerificationError", "certificate verify failed")
        assert DB_PASSWORD not in line
        line = user_error(await run_cli_async(env, "history", "1"), "certificate verify failed")
        assert DB_PASSWORD not in line
        with pytest.raises(ssl.SSLCertVerificationError):
            await create_pool(_verified(tls_postgres, "orderstatus", pki.wrong_ca_cert))

    async def test_a_missing_root_certificate_is_one_line(self, tls_postgres, tmp_path):
        """An sslrootcert that does not exist is a settings mistake: one line naming the file, no traceback."""
        missing = tmp_path / "no-such-ca.crt"
        env = _env(database_url=_verified(tls_postgres, "orderstatus", missing))
        line = user_error(await run_cli_async(env, "history", "1"), "database connection settings",
                          str(missing))
        assert DB_PASSWORD not in line
        line = user_error(await run_cli_async(env, "migrate"), "migration failed",
                          "ClientConfigurationError", str(missing))
        assert DB_PASSWORD not in line

    async def test_require_against_a_server_without_tls_fails(self, plain_postgres):
        """sslmode=require never falls back to plaintext: a server without TLS is one error line, and a pool
        does not open."""
        url = _url(plain_postgres, "orderstatus", sslmode="require")
        line = user_error(await run_cli_async(_env(database_url=url), "migrate"),
                          "migration failed", "rejected SSL upgrade")
        assert DB_PASSWORD not in line
        with pytest.raises(ConnectionError, match="rejected SSL upgrade"):
            await create_pool(url)


class TestSecretsAreNeverPrinted:
    def test_settings_hide_every_secret(self):
        """repr, str and a JSON dump of the settings show none of the database, SMTP and Kafka passwords."""
        settings = Settings(database_url=f"postgresql://postgres:{DB_PASSWORD}@db/orderstatus?sslmode=require",
                            smtp_username="mailer", smtp_password=SMTP_PASSWORD, smtp_starttls=True,
                            kafka_sasl_plain_password=SMTP_PASSWORD)
        for text in (repr(settings), str(settings), settings.model_dump_json()):
            assert DB_PASSWORD not in text and SMTP_PASSWORD not in text

    async def test_a_wrong_password_is_one_line_without_it(self, tls_postgres, pki):
        """A refused password is named as such, in one line that does not contain it."""
        wrong = f"wrong-{secrets.token_hex(6)}"
        url = _url(tls_postgres, "orderstatus", password=wrong, sslmode="verify-full", sslrootcert=str(pki.ca_cert))
        line = user_error(await run_cli_async(_env(database_url=url), "migrate"),
                          "password authentication failed")
        assert wrong not in line

    def test_an_invalid_setting_is_one_line_without_the_secrets(self):
        """A bad value is one line naming its variable; the other values (the database URL) are not echoed."""
        env = _env(database_url=f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:1/orderstatus", http_port="eighty")
        line = user_error(run_cli(env, "migrate"), "invalid settings", "ORDERSTATUS_HTTP_PORT")
        assert DB_PASSWORD not in line

    async def test_the_worker_log_never_shows_the_password(self, tls_postgres, pki, tmp_path):
        """A worker that cannot open its pool (wrong CA) logs its retries without the DSN's password."""
        env = _env(database_url=_verified(tls_postgres, "orderstatus", pki.wrong_ca_cert), http_port="0",
                   retry_initial_s="0.05", retry_max_s="0.2", kafka_bootstrap_servers="127.0.0.1:1")
        env["PYTHONUNBUFFERED"] = "1"  # every log line reaches the file as it is written
        log = tmp_path / "worker.log"
        with log.open("w") as out:
            process = start_cli(env, "worker", stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            await wait_until(lambda: _refused_certificates(log.read_text()) >= 2, 60,
                             "the worker's log of a refused certificate and of its retry")
        finally:
            process.kill()  # SIGTERM is not what this test is about (it is not heeded while the pool is retried)
            await asyncio.to_thread(process.wait, 20)
        assert DB_PASSWORD not in log.read_text()


# -- SMTP -----------------------------------------------------------------------------------------------------

class TestSmtpCredentialsOnlyOverTls:
    async def test_starttls_with_credentials_delivers(self, smtp, pki):
        """The notifier's delivery protocol (envelope, then DATA) through Mailer over STARTTLS with AUTH: the
        sink authenticated the mailer and received the message."""
        mailer = Mailer(_mail_settings(smtp, pki.ca_cert))
        try:
            await mailer.open_envelope("ann@example.com")
            reply = await mailer.send_data(_message("order 1029 over TLS"))
        finally:
            await mailer.close()
        assert reply.startswith("250")
        assert smtp.logins == ["mailer"]
        assert [m["Subject"] for m in smtp.messages] == ["order 1029 over TLS"]

    async def test_a_server_the_ca_did_not_sign_gets_no_credentials(self, smtp, pki):
        """With the wrong CA the STARTTLS handshake fails verification: nothing is sent, no login happens."""
        mailer = Mailer(_mail_settings(smtp, pki.wrong_ca_cert))
        with pytest.raises(SmtpUnavailable):
            await mailer.open_envelope("ann@example.com")
        mailer.drop()
        assert smtp.logins == [] and smtp.messages == []

    def test_settings_refuse_credentials_without_tls(self):
        """A username with neither STARTTLS nor implicit TLS is invalid, in one message naming the variables;
        implicit TLS alone is enough."""
        with pytest.raises(ValidationError) as refused:
            Settings(smtp_username="mailer", smtp_password=SMTP_PASSWORD, smtp_starttls=False, smtp_use_tls=False)
        (error,) = refused.value.errors()
        assert "ORDERSTATUS_SMTP_USERNAME" in error["msg"] and "ORDERSTATUS_SMTP_STARTTLS" in error["msg"]
        assert "\n" not in error["msg"]
        assert Settings(smtp_username="mailer", smtp_use_tls=True).smtp_use_tls

    async def test_the_mailer_refuses_to_log_in_without_tls(self, smtp, pki):
        """Defence in depth: the Mailer refuses unvalidated plaintext settings up front, and a mailer whose
        connection turned out plaintext refuses to log in on it (the sink saw no AUTH)."""
        secure = _mail_settings(smtp, pki.ca_cert)
        with pytest.raises(PlaintextCredentials):
            Mailer(secure.model_copy(update={"smtp_starttls": False}))  # model_copy skips validation
        mailer = Mailer(secure)
        mailer.settings = secure.model_copy(update={"smtp_starttls": False})  # as if STARTTLS had not happened
        with pytest.raises(PlaintextCredentials):
            await mailer.open_envelope("ann@example.com")
        assert smtp.logins == [] and smtp.messages == []

    def test_the_notifier_command_with_plaintext_credentials_is_one_line(self):
        """`orderstatus notifier` with SMTP credentials and no TLS exits 1 with one line naming the variables,
        before connecting anywhere, and shows neither password."""
        env = _env(smtp_username="mailer", smtp_password=SMTP_PASSWORD,
                   database_url=f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:1/orderstatus")
        line = user_error(run_cli(env, "notifier"), "ORDERSTATUS_SMTP_USERNAME", "ORDERSTATUS_SMTP_STARTTLS")
        assert SMTP_PASSWORD not in line and DB_PASSWORD not in line
