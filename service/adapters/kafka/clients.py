"""aiokafka clients built from settings. Only entrypoints create them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient

from service.runtime.settings import Settings


class FileTokenProvider(AbstractTokenProvider):
    """OAUTHBEARER: the token is the content of a file, read again on every request, so a token the
    platform rotates in place (a Kubernetes projected service-account token) is always current."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    async def token(self) -> str:
        text = await asyncio.to_thread(self.path.read_text, encoding="utf-8")
        token = text.strip()
        if not token:
            raise ValueError(f"the OAUTHBEARER token file {self.path} is empty")
        return token


def client_options(settings: Settings) -> dict:
    """Connection and security options shared by producers, consumers and the admin client."""
    options: dict = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.kafka_client_id,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        # verifies the broker's certificate (the CA file, else the system CAs) and by default its name
        context = create_ssl_context(
            cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile, keyfile=settings.kafka_ssl_keyfile
        )
        context.check_hostname = settings.kafka_ssl_check_hostname
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        # Settings has checked that the mechanism's credentials are present
        mechanism = settings.kafka_sasl_mechanism
        options["sasl_mechanism"] = mechanism
        if mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            options["sasl_plain_username"] = settings.kafka_sasl_plain_username
            if settings.kafka_sasl_plain_password is not None:
                options["sasl_plain_password"] = settings.kafka_sasl_plain_password.get_secret_value()
        elif mechanism == "OAUTHBEARER":
            options["sasl_oauth_token_provider"] = FileTokenProvider(settings.kafka_sasl_oauth_token_file)
        elif mechanism == "GSSAPI":
            options["sasl_kerberos_service_name"] = settings.kafka_sasl_kerberos_service_name
            options["sasl_kerberos_domain_name"] = settings.kafka_sasl_kerberos_domain_name
    return options


def make_producer(settings: Settings, **overrides) -> AIOKafkaProducer:
    # acks=all always: with idempotence off (the embedded broker) aiokafka would default to acks=1
    options = {
        **client_options(settings),
        "acks": "all",
        "enable_idempotence": settings.kafka_enable_idempotence,
        "linger_ms": settings.kafka_linger_ms,
        "max_batch_size": settings.kafka_max_batch_size,
        "compression_type": settings.kafka_compression_type,
        "max_request_size": settings.kafka_max_request_size,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(settings: Settings, group_id: str, *topics: str, **overrides) -> AIOKafkaConsumer:
    options = {
        **client_options(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "max_poll_interval_ms": settings.kafka_max_poll_interval_ms,
        "max_poll_records": settings.kafka_max_poll_records,
        "fetch_max_bytes": settings.kafka_fetch_max_bytes,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        "max_partition_fetch_bytes": settings.kafka_max_partition_fetch_bytes,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def learn_topic(consumer: AIOKafkaConsumer, topic: str) -> None:
    """Ask the broker for `topic`'s metadata now, so `partitions_for_topic` answers for it.

    A started consumer knows only the topics its metadata requests named. aiokafka's first request
    names none, which the embedded broker answers with every topic and Apache Kafka (Metadata v1 and
    later: an empty list means "no topic") with none: a group-less reader that asks for a topic's
    partitions right after `start()` finds none there. `_client` is the one private name this needs:
    the consumer has no public call that adds a topic to its metadata without subscribing."""
    await consumer._client.add_topic(topic)


def make_admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_options(settings))
