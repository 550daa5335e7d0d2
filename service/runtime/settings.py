"""Runtime configuration: the environment variables of DESIGN §3, read with pydantic-settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; names are the contract of DESIGN §3 (prefix ``ORDERSTATUS_``)."""

    model_config = SettingsConfigDict(env_prefix="ORDERSTATUS_", extra="ignore")

    # a secret (it may carry the password): `.get_secret_value()` only where the connection is opened.
    # TLS is asyncpg's DSN syntax end to end, migrations included: `?sslmode=verify-full&sslrootcert=FILE`
    database_url: SecretStr = SecretStr("postgresql://postgres@localhost:5432/orderstatus")
    # a database host that is not loopback needs sslmode=require, verify-ca or verify-full in the URL; this
    # opt-out (a private dev network such as docker-compose's) lets a plaintext connection start
    database_allow_plaintext: bool = False
    # every connection opened at start; the worker's batches take one, its relay up to two (this - 2)
    database_pool_size: int = Field(4, ge=1)

    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_enable_idempotence: bool = True
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"] = "PLAIN"
    kafka_sasl_plain_username: str | None = None
    kafka_sasl_plain_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    # SSL and SASL_SSL verify the broker's certificate (system CAs or kafka_ssl_cafile) and, unless
    # this is false, its host name
    kafka_ssl_check_hostname: bool = True
    # OAUTHBEARER: a file holding the token, read again on every token request (e.g. a Kubernetes
    # projected service-account token, which the kubelet rotates in place)
    kafka_sasl_oauth_token_file: str | None = None
    # GSSAPI: the Kerberos credentials come from the environment (KRB5_CONFIG, KRB5_CLIENT_KTNAME, ...)
    kafka_sasl_kerberos_service_name: str = "kafka"
    kafka_sasl_kerberos_domain_name: str | None = None
    kafka_client_id: str = "orderstatus"
    kafka_request_timeout_ms: int = 30_000
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    kafka_max_poll_interval_ms: int = 300_000
    kafka_max_poll_records: int = Field(500, ge=1)
    kafka_linger_ms: int = 5
    # bytes the producer gathers per partition into one record batch (aiokafka's max_batch_size, default
    # 16 KiB): larger batches mean fewer produce requests for the relay's rounds of up to 1,000 events
    # (make bench: the broker's CPU halves with 256 KiB)
    kafka_max_batch_size: int = Field(262_144, ge=1024)
    # the producer refuses a record larger than this (aiokafka's max_request_size); the broker's own
    # message.max.bytes must be at least as large
    kafka_max_request_size: int = Field(1_048_576, ge=1024)
    # what one fetch may bring: bounds the memory a poll can take, compressed (DESIGN §9, issue: hostile input)
    kafka_fetch_max_bytes: int = Field(16 * 1_048_576, ge=1024)
    # how long the broker may hold a fetch while it has nothing new (aiokafka's fetch_max_wait_ms, default
    # 500): the embedded broker answers a waiting fetch late, so this bounds latency (make bench, 1,000/s:
    # p99 ~290 ms with 500, ~70 ms with 50); a few more empty fetches while idle are the price
    kafka_fetch_max_wait_ms: int = Field(50, ge=0)
    kafka_max_partition_fetch_bytes: int = Field(1_048_576, ge=1024)
    # offsets of durable messages are committed at most this often (and always when idle, on revocation
    # and on stop; 0: after every batch). A commit is a broker round trip the consume loop waits for; at
    # 1,000 commands/s that was ~13 % of every batch's cycle. A crash redelivers what was not committed,
    # and the consumers dedupe it (DESIGN §7)
    kafka_commit_interval_ms: int = Field(1000, ge=0)
    kafka_compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None

    commands_topic: str = "order-status.commands"
    events_topic: str = "order-status.events"
    dlq_topic: str = "order-status.commands.dlq"
    worker_group: str = "orderstatus-worker"
    notifier_group: str = "orderstatus-notifier"

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_use_tls: bool = False
    smtp_timeout_s: float = 30.0
    # the CA bundle that verifies the SMTP server (unset: the system CAs)
    smtp_cafile: str | None = None
    mail_from: str = "orders@localhost"

    http_port: int = 8080
    notifier_http_port: int = 8081
    # loopback unless told otherwise: a pod sets 0.0.0.0 on purpose (deploy/k8s)
    http_host: str = "127.0.0.1"
    # DESIGN §11: the read API on its own port (unset: on the health port)
    read_api_port: int | None = None
    # DESIGN §11: the gateway (seed APIs over HTTP) and how long it waits for an outcome before a 202
    gateway_port: int = 8082
    gateway_wait_s: float = Field(10.0, gt=0)
    # issue 23: requests in flight per gateway replica and per caller (beyond: 429 with Retry-After), and how long
    # a request body may take to arrive (beyond: 408)
    gateway_max_in_flight: int = Field(64, ge=1)
    gateway_max_in_flight_per_principal: int = Field(8, ge=1)
    gateway_body_timeout_s: float = Field(30.0, gt=0)
    # issue 23: the gateway's /healthz, /readyz, /metrics and /status on this port, apart from the seed APIs (the
    # public Service exposes only ORDERSTATUS_GATEWAY_PORT); unset: all on the gateway port (dev, tests)
    gateway_ops_port: int | None = None
    # issue 23: the gateway signs each command's own token (bound to its id and value) with this private key,
    # never forwarding the caller's; its public half goes into the worker's AUTH_PUBLIC_KEYS / JWKS
    # (unset: ORDERSTATUS_AUTH_PRIVATE_KEY_FILE, the dev stack's key)
    gateway_signing_key_file: str | None = None
    gateway_command_token_ttl_s: float = Field(900.0, gt=0, le=86400)

    # DESIGN §11: who may act. off | optional | required; keys from a JWKS file or PEM public keys
    actor_auth: Literal["off", "optional", "required"] = "off"
    auth_jwks_file: str | None = None
    auth_public_keys: str | None = None  # comma-separated PEM files
    auth_issuer: str | None = None
    auth_audience: str | None = None
    # DESIGN §12: clock skew tolerated on a token's exp/nbf/iat, in seconds (small: an expired token is refused
    # at most this long after its exp)
    auth_leeway_s: float = Field(5.0, ge=0, le=300)
    # only `orderstatus tokens issue` and the dev stack sign; services never need it
    auth_private_key_file: str | None = None
    # a dev setup only (orderstatus dev, docker-compose): the read API serves private notes and change actors to
    # requests without a token; otherwise a request without one sees an order's history as a client does
    read_api_open: bool = False
    # DESIGN §12: the operator console (`orderstatus console`); read-only removes every action for everyone
    console_port: int = 8083
    console_read_only: bool = False
    # the console's /healthz, /readyz, /metrics and /status on this port and not on ORDERSTATUS_CONSOLE_PORT (which
    # the ingress exposes); unset: all on the console port (dev, tests) — as ORDERSTATUS_GATEWAY_OPS_PORT
    console_ops_port: int | None = None
    # the session cookie's Secure flag: auto = when the request came over HTTPS; true = always (behind an ingress
    # that terminates TLS the console sees plain HTTP; X-Forwarded-Proto is not trusted)
    console_secure_cookie: Literal["auto", "true"] = "auto"

    max_batch_items: int = Field(50, ge=1)
    # DESIGN §11: a value above max_message_bytes is dead-lettered unparsed (and no output we write may
    # exceed it); override items beyond max_wire_items make the command invalid before validation
    max_message_bytes: int = Field(1_048_576, ge=4096)
    max_wire_items: int = Field(1000, ge=1)

    # server-side limits of one statement and of one lock wait; a message whose transaction keeps
    # timing out on its own is dead-lettered after statement_timeout_tries (a real outage still pauses)
    db_statement_timeout_s: float = Field(30.0, gt=0)
    db_lock_timeout_s: float = Field(10.0, gt=0)
    db_statement_timeout_tries: int = Field(3, ge=1)

    # DESIGN §11: the worker's background prune of published outbox rows, processed-command records and
    # sent/failed notification records older than this many days (unset: off); it refuses a retention
    # shorter than the topics keep their messages (see README, Retention)
    retention_days: float | None = Field(None, gt=0)
    retention_interval_s: float = Field(3600.0, gt=0)  # how often the background prune runs
    retention_batch_size: int = Field(1000, ge=1)  # rows per delete statement

    # how long readiness tolerates no poll/commit progress before it reports not ready
    ready_stall_seconds: float = 60.0
    # backoff for infrastructure outages (seconds)
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _secure_combinations(self) -> "Settings":
        """Combinations that would send credentials in the clear, or silently ignore them, are refused
        with one line naming the variables (never their values)."""
        problem = _smtp_problem(self) or _kafka_problem(self) or _database_problem(self)
        if problem:
            raise ValueError(problem)
        return self


def _smtp_problem(s: Settings) -> str | None:
    if s.smtp_username is not None and not (s.smtp_starttls or s.smtp_use_tls):
        return ("ORDERSTATUS_SMTP_USERNAME is set but neither ORDERSTATUS_SMTP_STARTTLS nor ORDERSTATUS_SMTP_USE_TLS "
                "is true: SMTP credentials are never sent without TLS")
    return None


_SASL_CREDENTIALS = {
    "PLAIN": ("kafka_sasl_plain_username", "kafka_sasl_plain_password"),
    "SCRAM-SHA-256": ("kafka_sasl_plain_username", "kafka_sasl_plain_password"),
    "SCRAM-SHA-512": ("kafka_sasl_plain_username", "kafka_sasl_plain_password"),
    "OAUTHBEARER": ("kafka_sasl_oauth_token_file",),
    "GSSAPI": (),  # Kerberos credentials come from the environment
}


def _kafka_problem(s: Settings) -> str | None:
    protocol = s.kafka_security_protocol
    if protocol.startswith("SASL"):
        missing = [f"ORDERSTATUS_{name.upper()}" for name in _SASL_CREDENTIALS[s.kafka_sasl_mechanism]
                   if getattr(s, name) is None]
        if missing:
            return (f"ORDERSTATUS_KAFKA_SECURITY_PROTOCOL={protocol} with ORDERSTATUS_KAFKA_SASL_MECHANISM="
                    f"{s.kafka_sasl_mechanism} needs {' and '.join(missing)}")
    if protocol not in ("SSL", "SASL_SSL"):
        given = [name for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile") if getattr(s, name)]
        if given:
            return (f"ORDERSTATUS_{given[0].upper()} is set but ORDERSTATUS_KAFKA_SECURITY_PROTOCOL={protocol} "
                    "does not use TLS (SSL or SASL_SSL)")
    if protocol == "SASL_PLAINTEXT" and s.kafka_sasl_mechanism == "PLAIN":
        return ("ORDERSTATUS_KAFKA_SASL_MECHANISM=PLAIN with ORDERSTATUS_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT "
                "would send the Kafka password in the clear: use SASL_SSL, or SCRAM-SHA-512")
    if s.kafka_ssl_keyfile and not s.kafka_ssl_certfile:
        return "ORDERSTATUS_KAFKA_SSL_KEYFILE is set without ORDERSTATUS_KAFKA_SSL_CERTFILE (the client certificate)"
    return None


_TLS_SSLMODES = ("require", "verify-ca", "verify-full")


def _database_problem(s: Settings) -> str | None:
    """A database host that is not loopback needs TLS in the URL (asyncpg's default `prefer` verifies nothing
    and falls back to plaintext), unless ORDERSTATUS_DATABASE_ALLOW_PLAINTEXT says it is meant."""
    if s.database_allow_plaintext:
        return None
    hosts, sslmode = database_hosts_and_sslmode(s.database_url.get_secret_value())
    remote = [host for host in hosts if not _is_loopback(host)]
    if remote and sslmode not in _TLS_SSLMODES:
        return (f"ORDERSTATUS_DATABASE_URL names host {remote[0]} (not loopback) with sslmode={sslmode or 'unset'}: "
                "add ?sslmode=verify-full (or require), or set ORDERSTATUS_DATABASE_ALLOW_PLAINTEXT=true on a "
                "private dev network")
    return None


def database_hosts_and_sslmode(url: str) -> tuple[list[str], str | None]:
    """The hosts of a postgresql:// URL (a socket directory or none: loopback) and its sslmode (query or env)."""
    import os
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    netloc = parts.netloc.rpartition("@")[2]
    hosts = []
    for item in filter(None, netloc.split(",")):
        host = item[1:].partition("]")[0] if item.startswith("[") else item.partition(":")[0]
        hosts.append(unquote(host))
    hosts += [h for value in query.get("host", []) for h in value.split(",") if h]
    sslmode = (query.get("sslmode") or [os.environ.get("PGSSLMODE")])[-1]
    return hosts, sslmode


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host in ("", "localhost") or host.startswith("/"):  # a Unix socket never leaves the machine
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
