"""Kafka client security built from settings: TLS that verifies the broker, each SASL mechanism's options
(PLAIN, SCRAM-SHA-256/512, OAUTHBEARER from a token file, GSSAPI), the combinations Settings refuses, and
aiokafka accepting every option set. No broker is needed."""

from __future__ import annotations

import datetime
import socket
import ssl

import pytest
from aiokafka.abc import AbstractTokenProvider
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (ClusterAuthorizationFailedError, GroupAuthorizationFailedError, KafkaConnectionError,
                             MessageSizeTooLargeError, TopicAuthorizationFailedError)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from service.adapters.kafka.clients import (FileTokenProvider, bootstrap_refusal, client_options, make_consumer,
                                            make_producer, refusal)
from service.runtime.settings import Settings

PASSWORD = "kafka-secret-pw"
PASSWORD_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def _settings(**values) -> Settings:
    return Settings(kafka_bootstrap_servers="broker-1:9093", **values)


def _sasl(protocol: str, mechanism: str, tmp_path) -> Settings:
    """Valid settings for one protocol and mechanism, with the credentials that mechanism needs."""
    credentials: dict = {}
    if mechanism in PASSWORD_MECHANISMS:
        credentials = {"kafka_sasl_plain_username": "worker", "kafka_sasl_plain_password": PASSWORD}
    elif mechanism == "OAUTHBEARER":
        token = tmp_path / "token"
        token.write_text("header.payload.signature\n")
        credentials = {"kafka_sasl_oauth_token_file": str(token)}
    return _settings(kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism, **credentials)


@pytest.fixture
def ca_file(tmp_path):
    """A self-signed CA certificate in PEM, as a broker's CA file would be."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kafka test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = tmp_path / "kafka-ca.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


class TestTls:
    def test_plaintext_has_neither_tls_nor_sasl(self):
        """PLAINTEXT options carry no TLS context and no SASL option at all."""
        options = client_options(_settings())
        assert options["security_protocol"] == "PLAINTEXT"
        assert "ssl_context" not in options
        assert not [key for key in options if key.startswith("sasl")]

    @pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
    def test_tls_verifies_the_broker_and_its_name_by_default(self, protocol, tmp_path):
        """SSL and SASL_SSL require a valid certificate and check the broker's host name unless told not to."""
        options = client_options(_sasl(protocol, "PLAIN", tmp_path) if protocol == "SASL_SSL" else
                                 _settings(kafka_security_protocol=protocol))
        context = options["ssl_context"]
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True

    def test_check_hostname_false_still_verifies_the_chain(self):
        """ORDERSTATUS_KAFKA_SSL_CHECK_HOSTNAME=false skips the name check only; the certificate is still verified."""
        settings = _settings(kafka_security_protocol="SSL", kafka_ssl_check_hostname=False)
        context = client_options(settings)["ssl_context"]
        assert context.check_hostname is False
        assert context.verify_mode == ssl.CERT_REQUIRED

    def test_the_ca_file_is_what_verifies_the_broker(self, ca_file):
        """ORDERSTATUS_KAFKA_SSL_CAFILE is loaded into the context as a trusted CA."""
        context = client_options(_settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(ca_file)))["ssl_context"]
        subjects = [dict(entry[0] for entry in ca["subject"]) for ca in context.get_ca_certs()]
        assert {"commonName": "kafka test CA"} in subjects


class TestSasl:
    @pytest.mark.parametrize(("protocol", "mechanism"),
                             [(p, m) for p in ("SASL_PLAINTEXT", "SASL_SSL") for m in PASSWORD_MECHANISMS
                              if (p, m) != ("SASL_PLAINTEXT", "PLAIN")])
    def test_password_mechanisms_pass_username_and_plain_password(self, protocol, mechanism, tmp_path):
        """PLAIN and SCRAM get the mechanism, the username and the password as a plain string (the only place
        the secret is unwrapped); TLS exactly when the protocol says SSL."""
        options = client_options(_sasl(protocol, mechanism, tmp_path))
        assert options["sasl_mechanism"] == mechanism
        assert options["sasl_plain_username"] == "worker"
        assert options["sasl_plain_password"] == PASSWORD
        assert ("ssl_context" in options) == (protocol == "SASL_SSL")
        assert "sasl_oauth_token_provider" not in options

    async def test_oauthbearer_reads_the_token_file_on_every_request(self, tmp_path):
        """OAUTHBEARER gets a token provider that re-reads its file, so a token rotated in place is used next."""
        options = client_options(_sasl("SASL_SSL", "OAUTHBEARER", tmp_path))
        provider = options["sasl_oauth_token_provider"]
        assert isinstance(provider, AbstractTokenProvider)
        assert "sasl_plain_password" not in options
        assert await provider.token() == "header.payload.signature"
        (tmp_path / "token").write_text("rotated.token.value")
        assert await provider.token() == "rotated.token.value"

    async def test_an_empty_token_file_is_an_error_naming_the_file(self, tmp_path):
        """An empty token file is refused with its path, instead of sending an empty token to the broker."""
        (tmp_path / "empty").write_text("\n")
        with pytest.raises(ValueError, match="empty"):
            await FileTokenProvider(str(tmp_path / "empty")).token()

    def test_gssapi_passes_the_kerberos_names(self):
        """GSSAPI gets the Kerberos service and domain names from settings (credentials come from the environment)."""
        options = client_options(_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="GSSAPI",
                                           kafka_sasl_kerberos_domain_name="kafka.internal"))
        assert options["sasl_mechanism"] == "GSSAPI"
        assert options["sasl_kerberos_service_name"] == "kafka"
        assert options["sasl_kerberos_domain_name"] == "kafka.internal"
        assert "sasl_plain_username" not in options

    @pytest.mark.parametrize(
        ("protocol", "mechanism"),
        [("PLAINTEXT", "PLAIN"), ("SSL", "PLAIN")]
        + [(p, m) for p in ("SASL_PLAINTEXT", "SASL_SSL") for m in [*PASSWORD_MECHANISMS, "OAUTHBEARER", "GSSAPI"]
           if (p, m) != ("SASL_PLAINTEXT", "PLAIN")],
    )
    async def test_aiokafka_accepts_every_option_set(self, protocol, mechanism, tmp_path):
        """The admin client, a producer and a consumer are built from each protocol/mechanism's options without
        an error (a misspelt or missing option, e.g. no token provider, would raise here)."""
        settings = _sasl(protocol, mechanism, tmp_path)
        AIOKafkaAdminClient(**client_options(settings))
        make_producer(settings, enable_idempotence=False)
        make_consumer(settings, "group", "topic")


class TestRefusedCombinations:
    @pytest.mark.parametrize(
        ("values", "named"),
        [
            ({"kafka_security_protocol": "SASL_SSL"},
             ["ORDERSTATUS_KAFKA_SASL_PLAIN_USERNAME", "ORDERSTATUS_KAFKA_SASL_PLAIN_PASSWORD"]),
            ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
              "kafka_sasl_plain_username": "worker"}, ["ORDERSTATUS_KAFKA_SASL_PLAIN_PASSWORD"]),
            ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "SCRAM-SHA-256",
              "kafka_sasl_plain_password": PASSWORD}, ["ORDERSTATUS_KAFKA_SASL_PLAIN_USERNAME"]),
            ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER"},
             ["ORDERSTATUS_KAFKA_SASL_OAUTH_TOKEN_FILE"]),
            ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN",
              "kafka_sasl_plain_username": "worker", "kafka_sasl_plain_password": PASSWORD},
             ["ORDERSTATUS_KAFKA_SASL_MECHANISM=PLAIN", "SASL_PLAINTEXT"]),
            ({"kafka_ssl_cafile": "/etc/kafka-ca.crt"}, ["ORDERSTATUS_KAFKA_SSL_CAFILE", "PLAINTEXT"]),
            ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/etc/client.key"},
             ["ORDERSTATUS_KAFKA_SSL_KEYFILE", "ORDERSTATUS_KAFKA_SSL_CERTFILE"]),
        ],
        ids=["sasl-no-credentials", "scram-no-password", "scram-no-username", "oauth-no-token-file",
             "plain-over-plaintext", "cafile-without-tls", "key-without-cert"],
    )
    def test_refused_with_one_line_naming_the_variables(self, values, named):
        """Each combination is invalid, in one line that names the variables involved and never the password."""
        with pytest.raises(ValidationError) as refused:
            _settings(**values)
        (error,) = refused.value.errors()
        message = error["msg"]
        assert "\n" not in message and PASSWORD not in message
        for name in named:
            assert name in message, message

    def test_gssapi_needs_no_password(self):
        """GSSAPI is valid without username or password: Kerberos supplies the credentials."""
        settings = _settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="GSSAPI")
        assert settings.kafka_sasl_mechanism == "GSSAPI"


class TestRefusals:
    """What the broker's refusals read as (`KafkaRefused`, one line naming who and what); the real broker's
    answers are in tests/apache_kafka/test_apache_security.py."""

    WORKER = dict(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                  kafka_sasl_plain_username="worker", kafka_sasl_plain_password=PASSWORD)

    def test_a_missing_topic_or_group_acl_names_the_user_and_the_resource(self):
        """Topic and group authorization failures name the user and every refused topic or the group."""
        settings = _settings(**self.WORKER)
        topic = refusal(TopicAuthorizationFailedError({"b-topic", "a-topic"}), settings)
        group = refusal(GroupAuthorizationFailedError("worker-group"), settings)
        assert str(topic) == "Kafka refused user 'worker' access to topic a-topic, b-topic: not authorised (no ACL allows it)"
        assert "user 'worker' the consumer group worker-group: not authorised" in str(group)
        assert PASSWORD not in str(topic) + str(group)

    def test_a_refused_init_producer_id_says_the_idempotent_producer_was_refused(self):
        """ClusterAuthorizationFailed at the producer's start is the idempotent producer's InitProducerId."""
        refused = refusal(ClusterAuthorizationFailedError(), _settings(**self.WORKER), init_producer_id=True)
        assert "refused user 'worker' an idempotent producer" in str(refused)
        assert "Write on a topic or IdempotentWrite on the cluster" in str(refused)

    @pytest.mark.parametrize("exc", [KafkaConnectionError("down"), MessageSizeTooLargeError(), ValueError("x")],
                             ids=lambda e: type(e).__name__)
    def test_other_failures_are_no_refusal(self, exc):
        """Outages and a message's own faults are left as they are."""
        assert refusal(exc, _settings(**self.WORKER)) is None

    async def test_a_broker_nobody_listens_on_is_an_outage_not_a_refusal(self, ca_file):
        """Connection refused on every bootstrap server: no refusal to report, the caller's outage stands."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{port}", kafka_ssl_cafile=str(ca_file), **self.WORKER)
        assert await bootstrap_refusal(settings) is None
