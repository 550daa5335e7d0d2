"""aiokafka clients built from settings. Only entrypoints create them.

The clients made here say why the broker refuses them: a wrong password or an untrusted broker certificate
(aiokafka reports either as "Unable to bootstrap", as if the broker were down) and a missing ACL become one
`KafkaRefused` line naming the user, which processes and commands treat as fatal, never as an outage."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import collect_hosts, create_conn
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
)

from service.adapters.errors import KafkaRefused
from service.adapters.kafka.config import KafkaSettings


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


def client_options(settings: KafkaSettings) -> dict:
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


def _principal(settings: KafkaSettings) -> str:
    """Who the broker sees, as an operator would look it up in the ACLs."""
    protocol, mechanism = settings.kafka_security_protocol, settings.kafka_sasl_mechanism
    if protocol.startswith("SASL") and mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        return f"user '{settings.kafka_sasl_plain_username}'"
    if protocol.startswith("SASL"):
        return f"the {mechanism} principal"
    return "the client certificate's principal" if settings.kafka_ssl_certfile else "the anonymous principal"


def _names(exc: BaseException) -> str:
    """The topics or group an aiokafka authorization error names (a name, or a set of names)."""
    if not exc.args:
        return ""
    named = exc.args[0]
    return ", ".join(sorted(map(str, named))) if isinstance(named, (set, frozenset, list, tuple)) else str(named)


def refusal(exc: BaseException, settings: KafkaSettings, *, init_producer_id: bool = False) -> KafkaRefused | None:
    """The one-line `KafkaRefused` an aiokafka authorization error stands for; None for any other failure.
    `init_producer_id`: the error answered the idempotent producer's InitProducerId at its start."""
    who = _principal(settings)
    if isinstance(exc, TopicAuthorizationFailedError):
        return KafkaRefused(f"Kafka refused {who} access to topic {_names(exc)}: not authorised (no ACL allows it)")
    if isinstance(exc, GroupAuthorizationFailedError):
        return KafkaRefused(f"Kafka refused {who} the consumer group {_names(exc)}: not authorised "
                            "(no ACL allows it)")
    if isinstance(exc, ClusterAuthorizationFailedError) and init_producer_id:
        return KafkaRefused(f"Kafka refused {who} an idempotent producer (InitProducerId: not authorised): the user "
                            "needs Write on a topic or IdempotentWrite on the cluster "
                            "(ORDERSTATUS_KAFKA_ENABLE_IDEMPOTENCE=true)")
    if isinstance(exc, (ClusterAuthorizationFailedError, TransactionalIdAuthorizationFailed)):
        return KafkaRefused(f"Kafka refused {who}: not authorised ({type(exc).__name__})")
    return None


async def bootstrap_refusal(settings: KafkaSettings) -> KafkaRefused | None:
    """Why no bootstrap server let the client in, when the reason is no outage: connect to each one as the
    clients do and report a refused SASL login or an untrusted certificate; None when they are only unreachable."""
    options = client_options(settings)
    options.pop("bootstrap_servers")
    for host, port, _ in collect_hosts(settings.kafka_bootstrap_servers, randomize=False):
        try:
            conn = await create_conn(host, port, **options)
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError, IllegalSaslStateError) as exc:
            detail = exc.args[0] if exc.args else type(exc).__name__
            return KafkaRefused(f"Kafka at {host}:{port} refused the SASL credentials of {_principal(settings)} "
                                f"({settings.kafka_sasl_mechanism}): {detail}")
        except ssl.SSLCertVerificationError as exc:
            trusted = (f"ORDERSTATUS_KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile}" if settings.kafka_ssl_cafile
                       else "the system CAs (ORDERSTATUS_KAFKA_SSL_CAFILE is unset)")
            return KafkaRefused(f"the TLS certificate of Kafka at {host}:{port} is not trusted by {trusted}: "
                                f"CERTIFICATE_VERIFY_FAILED, {exc.verify_message}")
        except Exception:  # unreachable, timed out, …: an outage, which the caller reports as it is
            continue
        conn.close()
    return None


class _ExplainsRefusals:
    """`start()` of an aiokafka client that raises `KafkaRefused` (and closes the client) when the broker refused
    it, and aiokafka's own error otherwise."""

    _settings: KafkaSettings

    async def _close(self) -> None:
        await self.stop()

    async def _refused(self, exc: BaseException) -> KafkaRefused | None:
        if isinstance(exc, KafkaConnectionError):
            return await bootstrap_refusal(self._settings)
        return refusal(exc, self._settings)

    async def start(self):
        try:
            return await super().start()
        except Exception as exc:
            refused = await self._refused(exc)
            if refused is None:
                raise
            await self._close()
            raise refused from exc


class Producer(_ExplainsRefusals, AIOKafkaProducer):
    def __init__(self, settings: KafkaSettings, **options) -> None:
        self._settings = settings
        super().__init__(**options)

    async def _refused(self, exc: BaseException) -> KafkaRefused | None:
        if isinstance(exc, ClusterAuthorizationFailedError):  # the idempotent producer's InitProducerId
            return refusal(exc, self._settings, init_producer_id=True)
        return await super()._refused(exc)

    async def send(self, *args, **kwargs) -> asyncio.Future:
        """As aiokafka's, with a topic the user may not write refused as `KafkaRefused`: at once when it may not
        even describe the topic, else by the acknowledgement."""
        try:
            acknowledged = await super().send(*args, **kwargs)
        except TopicAuthorizationFailedError as exc:
            raise refusal(exc, self._settings) from exc
        explained = asyncio.get_running_loop().create_future()

        def settle(ack: asyncio.Future) -> None:
            if explained.done():
                return
            if ack.cancelled():
                explained.cancel()
            elif ack.exception() is None:
                explained.set_result(ack.result())
            else:
                error = ack.exception()
                refused = refusal(error, self._settings) if isinstance(error, TopicAuthorizationFailedError) else None
                if refused is not None:
                    refused.__cause__ = error  # as `raise … from`: the broker's own error stays in the chain
                explained.set_exception(refused or error)

        acknowledged.add_done_callback(settle)
        return explained


class Consumer(_ExplainsRefusals, AIOKafkaConsumer):
    def __init__(self, settings: KafkaSettings, *topics: str, **options) -> None:
        self._settings = settings
        super().__init__(*topics, **options)

    async def _explaining(self, call):
        try:
            return await call
        except (TopicAuthorizationFailedError, GroupAuthorizationFailedError) as exc:
            raise refusal(exc, self._settings) from exc

    async def getmany(self, *partitions, **kwargs):
        return await self._explaining(super().getmany(*partitions, **kwargs))

    async def committed(self, partition):
        return await self._explaining(super().committed(partition))

    async def commit(self, offsets=None):
        return await self._explaining(super().commit(offsets))


class Admin(_ExplainsRefusals, AIOKafkaAdminClient):
    def __init__(self, settings: KafkaSettings, **options) -> None:
        self._settings = settings
        super().__init__(**options)

    async def _close(self) -> None:
        await self.close()

    async def find_coordinator(self, group_id: str, coordinator_type: int = 0) -> int:
        try:
            return await super().find_coordinator(group_id, coordinator_type)
        except GroupAuthorizationFailedError as exc:  # aiokafka's names no group, ours does
            raise refusal(GroupAuthorizationFailedError(group_id), self._settings) from exc


def consumer_of(settings: KafkaSettings, *topics: str, **options) -> Consumer:
    """A consumer with the settings' connection and security and exactly the given consumer options."""
    return Consumer(settings, *topics, **client_options(settings), **options)


def make_producer(settings: KafkaSettings, **overrides) -> AIOKafkaProducer:
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
    return Producer(settings, **options)


def make_consumer(settings: KafkaSettings, group_id: str, *topics: str, **overrides) -> AIOKafkaConsumer:
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
    return Consumer(settings, *topics, **options)


async def learn_topic(consumer: AIOKafkaConsumer, topic: str) -> None:
    """Ask the broker for `topic`'s metadata now, so `partitions_for_topic` answers for it.

    A started consumer knows only the topics its metadata requests named. aiokafka's first request
    names none, which the embedded broker answers with every topic and Apache Kafka (Metadata v1 and
    later: an empty list means "no topic") with none: a group-less reader that asks for a topic's
    partitions right after `start()` finds none there. `_client` is the one private name this needs:
    the consumer has no public call that adds a topic to its metadata without subscribing. The request
    says "do not create it": the embedded broker (and Apache Kafka with `auto.create.topics.enable`)
    would otherwise create a misspelt topic that a read-only tool merely asked about.

    A topic the user may not describe is in no metadata either: that raises `KafkaRefused` (from a consumer
    made here) rather than passing for a topic that does not exist."""
    client = consumer._client
    node = client.get_random_node()
    if node is None:  # no broker known yet: aiokafka's own path bootstraps first
        await client.add_topic(topic)
    else:
        answer = await client.send(node, MetadataRequest([topic], allow_auto_topic_creation=False))
        client.cluster.update_metadata(answer)
    if topic in client.cluster.unauthorized_topics:
        exc = TopicAuthorizationFailedError(topic)
        raise (refusal(exc, consumer._settings) if isinstance(consumer, Consumer) else exc)


def make_admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    return Admin(settings, **client_options(settings))
