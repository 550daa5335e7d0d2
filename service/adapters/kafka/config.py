"""What the Kafka adapter reads of the configuration: declared here, below the runtime, so the adapter never
imports `runtime.settings`. `runtime.settings.Settings` has every one of these fields (DESIGN §3), so the
entrypoints pass it as it is; a test may pass any object with them."""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr


class KafkaSettings(Protocol):
    """The connection, security and client options of every Kafka client, and the topics the tools name."""

    kafka_bootstrap_servers: str
    kafka_client_id: str
    kafka_request_timeout_ms: int
    kafka_security_protocol: str
    kafka_ssl_cafile: str | None
    kafka_ssl_certfile: str | None
    kafka_ssl_keyfile: str | None
    kafka_ssl_check_hostname: bool
    kafka_sasl_mechanism: str
    kafka_sasl_plain_username: str | None
    kafka_sasl_plain_password: SecretStr | None
    kafka_sasl_oauth_token_file: str | None
    kafka_sasl_kerberos_service_name: str
    kafka_sasl_kerberos_domain_name: str | None

    # the producer's
    kafka_enable_idempotence: bool
    kafka_linger_ms: int
    kafka_max_batch_size: int
    kafka_compression_type: str | None
    kafka_max_request_size: int

    # the consumers'
    kafka_session_timeout_ms: int
    kafka_heartbeat_interval_ms: int
    kafka_max_poll_interval_ms: int
    kafka_max_poll_records: int
    kafka_fetch_max_bytes: int
    kafka_fetch_max_wait_ms: int
    kafka_max_partition_fetch_bytes: int

    commands_topic: str
    events_topic: str
    dlq_topic: str
