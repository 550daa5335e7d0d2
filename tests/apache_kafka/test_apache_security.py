"""The production manifests' Kafka security (deploy/k8s/kafka-config.yaml: SASL_SSL, SCRAM-SHA-512, the broker CA
file, idempotent producers) against a real Apache Kafka: a broker whose SASL_SSL listener has a certificate of a
throwaway CA made here, SCRAM users made by the storage tool, the StandardAuthorizer, and ACLs that give each
component only its own topics and groups. Every process and operator command works under its own user; a wrong
password, a wrong CA, a missing ACL and a refused idempotent producer each fail at once in one clear line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from service.adapters.errors import KafkaRefused
from service.adapters.kafka.clients import make_consumer, make_producer
from service.adapters.kafka.records import topic_records
from service.devkit.apache_kafka import ApacheKafka
from service.devkit.embedded import free_port, scratch_dir
from service.notifier.rendering import EVENT_ID_HEADER
from service.runtime.auth import issue_token, new_key_pair
from service.entrypoints.cli.console import indexer_group
from service.runtime.settings import Settings
from tests.helpers.browser import ConsoleClient, console_settings, running_console
from tests.helpers.browser import token as console_token
from tests.helpers.cli import ok, run_cli_async, settings_env, user_error
from tests.helpers.database import fetch, fetchval, seed_database, url_of
from tests.helpers.kafka_acls import script_grants
from tests.helpers.pki import certificate, pem
from tests.helpers.processes import ServiceProcess
from tests.helpers.producing import Producer
from tests.helpers.topics import TopicReader
from tests.helpers.waiting import wait_until

USERS = ("admin", "worker", "notifier", "gateway", "console", "operator", "stranger")
PASSWORDS = {user: f"{user}-{secrets.token_hex(8)}" for user in USERS}


# -- a throwaway PKI ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    wrong_ca_cert: Path  # a CA that did not sign the broker's certificate
    broker_pem: Path  # the broker's key and certificate chain, one PEM file (ssl.keystore.type=PEM)


def make_pki(folder: Path) -> Pki:
    ca_key, wrong_key, broker_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    pki = Pki(folder / "ca.crt", folder / "wrong-ca.crt", folder / "broker.pem")
    ca = certificate("test Kafka CA", ca_key, "test Kafka CA", ca_key, ca=True)
    pki.ca_cert.write_bytes(pem(ca))
    pki.wrong_ca_cert.write_bytes(pem(certificate("other CA", wrong_key, "other CA", wrong_key, ca=True)))
    broker = certificate("127.0.0.1", broker_key, "test Kafka CA", ca_key, ca=False)
    pki.broker_pem.write_bytes(
        broker_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        + pem(broker) + pem(ca))
    pki.broker_pem.chmod(0o600)
    return pki


# -- the secured broker ---------------------------------------------------------------------------------------

@dataclass
class SecureKafka:
    broker: ApacheKafka
    pki: Pki
    bootstrap: str  # the SASL_SSL listener


def start_secure_kafka() -> SecureKafka:
    folder = scratch_dir("orderstatus-test-secure-kafka-")
    pki = make_pki(folder)
    sasl_port = free_port()
    extra = {
        # PLAINTEXT stays on loopback for the controller and the brokers' own traffic (and the devkit's readiness
        # probe); its principal, User:ANONYMOUS, is a super user. Clients use SASL_SSL only.
        "listeners": f"PLAINTEXT://127.0.0.1:{{port}},SASL_SSL://127.0.0.1:{sasl_port},"
                     "CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{{port}},SASL_SSL://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(pki.broker_pem),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:admin;User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
    }
    scram = [argument for user in USERS
             for argument in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={PASSWORDS[user]}]")]
    broker = ApacheKafka(folder, size=1, extra=extra, format_arguments=tuple(scram)).start()
    return SecureKafka(broker, pki, f"127.0.0.1:{sasl_port}")


@pytest.fixture(scope="module")
def secure_kafka():
    """One Apache Kafka node with a SASL_SSL (SCRAM-SHA-512) listener, the StandardAuthorizer and six users."""
    kafka = start_secure_kafka()
    try:
        yield kafka
    finally:
        kafka.broker.stop_all()


@pytest.fixture(scope="module")
def kafka_bootstrap(secure_kafka):
    """The suite's `settings` point at the SASL_SSL listener (no session broker is started for this module)."""
    return secure_kafka.bootstrap


# -- users, ACLs, settings per component ----------------------------------------------------------------------

def _admin_config(kafka: SecureKafka) -> dict:
    return {"bootstrap.servers": kafka.bootstrap, "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "admin", "sasl.password": PASSWORDS["admin"], "ssl.ca.location": str(kafka.pki.ca_cert)}


def _acls(settings: Settings, component: str) -> list[tuple[ResourceType, str, AclOperation]]:
    """What each component may do on this test's topics and groups, and nothing more (deploy/k8s/README.md)."""
    commands, events, dlq = settings.commands_topic, settings.events_topic, settings.dlq_topic
    topic, group = ResourceType.TOPIC, ResourceType.GROUP
    return {
        "worker": [(topic, commands, AclOperation.READ), (group, settings.worker_group, AclOperation.READ),
                   (topic, events, AclOperation.WRITE), (topic, dlq, AclOperation.WRITE)],
        "notifier": [(topic, events, AclOperation.READ), (group, settings.notifier_group, AclOperation.READ)],
        "gateway": [(topic, commands, AclOperation.WRITE), (topic, events, AclOperation.READ)],
        # `send --wait` and `lag`: publish commands, follow the events, read both groups' committed offsets
        "operator": [(topic, commands, AclOperation.WRITE), (topic, commands, AclOperation.DESCRIBE),
                     (topic, events, AclOperation.READ), (group, settings.worker_group, AclOperation.DESCRIBE),
                     (group, settings.notifier_group, AclOperation.DESCRIBE)],
    }[component]


async def grant(kafka: SecureKafka, settings: Settings, without: frozenset = frozenset(), **users: str) -> None:
    """Give each user (keyword) the ACLs of a component (value) on this test's topics and groups, except those on
    the (resource type, name) pairs `without`; created by the admin super user, and waited for until the broker's
    authorizer has them."""
    await _create_acls(kafka, [(user, kind, name, operation) for user, component in users.items()
                               for kind, name, operation in _acls(settings, component) if (kind, name) not in without])


def _deployed_names(settings: Settings) -> dict[str, str]:
    """deploy/kafka-acls.sh names the default topics and groups (DESIGN §3); this test has its own."""
    fields = ("commands_topic", "events_topic", "dlq_topic", "worker_group", "notifier_group")
    defaults = settings.model_copy(update={field: Settings.model_fields[field].default for field in fields})
    names = {getattr(defaults, field): getattr(settings, field) for field in fields}
    names[indexer_group(defaults)] = indexer_group(settings)
    return names


async def grant_as_deployed(kafka: SecureKafka, settings: Settings, user: str) -> None:
    """Give `user` exactly the ACLs deploy/kafka-acls.sh gives it, on this test's topics and groups."""
    names = _deployed_names(settings)
    grants = [g for g in script_grants() if g.principal == user]
    assert grants, f"deploy/kafka-acls.sh grants nothing to User:{user}"
    unknown = [g.line for g in grants if g.name not in names]
    assert not unknown, f"deploy/kafka-acls.sh names a topic or group no setting names: {unknown}"
    kinds = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
    await _create_acls(kafka, [(user, kinds[g.kind], names[g.name], AclOperation[g.operation.upper()])
                               for g in grants])


async def _create_acls(kafka: SecureKafka, acls: list[tuple[str, ResourceType, str, AclOperation]]) -> None:
    """Allow each (user, resource type, name, operation), as the admin super user, and wait until the broker's
    authorizer has them."""
    bindings = [AclBinding(kind, name, ResourcePatternType.LITERAL, f"User:{user}", "*", operation,
                           AclPermissionType.ALLOW) for user, kind, name, operation in acls]
    admin = AdminClient(_admin_config(kafka))
    for future in admin.create_acls(bindings).values():
        await asyncio.to_thread(future.result, 30)
    wanted = {(b.restype, b.name, b.principal, b.operation) for b in bindings}

    async def applied():
        found = await asyncio.to_thread(admin.describe_acls(AclBindingFilter(
            ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
            AclPermissionType.ANY)).result, 30)
        return wanted <= {(b.restype, b.name, b.principal, b.operation) for b in found}

    await wait_until(applied, 30, "the ACLs to be applied")


async def revoke(kafka: SecureKafka, user: str, kind: ResourceType, name: str) -> None:
    """Delete every ACL of `user` on one resource, and wait until the broker's authorizer has none left."""
    admin = AdminClient(_admin_config(kafka))
    matching = AclBindingFilter(kind, name, ResourcePatternType.LITERAL, f"User:{user}", None, AclOperation.ANY,
                                AclPermissionType.ANY)
    for future in admin.delete_acls([matching]).values():
        await asyncio.to_thread(future.result, 30)

    async def gone():
        return not await asyncio.to_thread(admin.describe_acls(matching).result, 30)

    await wait_until(gone, 30, "the ACLs to be deleted")


def as_user(settings: Settings, kafka: SecureKafka, user: str, *, password: str | None = None,
            cafile: Path | None = None) -> Settings:
    """The settings of deploy/k8s/kafka-config.yaml for `user`: SASL_SSL, SCRAM-SHA-512, the broker CA file."""
    return settings.model_copy(update={
        "kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_plain_username": user, "kafka_sasl_plain_password": SecretStr(password or PASSWORDS[user]),
        "kafka_ssl_cafile": str(cafile or kafka.pki.ca_cert), "kafka_enable_idempotence": True,
    })


def watching(settings: Settings, kafka: SecureKafka) -> Settings:
    """The test's own eyes: the loopback PLAINTEXT listener, whose principal is a super user."""
    return settings.model_copy(update={"kafka_bootstrap_servers": kafka.broker.bootstrap_servers})


async def topics_created(settings: Settings, kafka: SecureKafka) -> None:
    """The sample rules and orders in the database; the three topics made by `topics create` as the admin."""
    await seed_database(url_of(settings))
    ok(await run_cli_async(settings_env(as_user(settings, kafka, "admin")), "topics", "create", "--partitions", "2"))


CHANGE = {"type": "ChangeOrderStatus", "order_id": 1033, "status": 2, "actor": {"id": "staff-1", "role": "staff"}}
ISSUER, AUDIENCE = "https://id.example.com", "orderstatus"
PRIVATE, PUBLIC = new_key_pair()


def as_gateway(settings: Settings, kafka: SecureKafka, folder: Path) -> Settings:
    """The gateway's settings under user `gateway`: a public key for the actor tokens, a port of its own."""
    public, signing = folder / "public.pem", folder / "signing.pem"
    public.write_bytes(PUBLIC)
    signing.write_bytes(PRIVATE)  # the gateway signs each command's own token (issue 23); the worker trusts PUBLIC
    return as_user(settings, kafka, "gateway").model_copy(update={
        "auth_public_keys": str(public), "auth_issuer": ISSUER, "auth_audience": AUDIENCE,
        "gateway_signing_key_file": str(signing),
        "gateway_port": free_port(), "gateway_wait_s": 20.0})


def _mails_of(mailbox, event_id: str) -> list:
    return [m for m in mailbox.messages if m[EVENT_ID_HEADER] == event_id]


async def _exit_code(process: ServiceProcess, timeout: float = 60) -> int:
    """Wait for a process that must stop on its own; its exit code."""
    try:
        await wait_until(lambda: process.proc.poll() is not None, timeout, f"the {process.command} to exit")
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{process.tail()}") from None
    return process.proc.returncode


def _one_error_line(process: ServiceProcess, *fragments: str) -> str:
    """The process's log: no traceback, and exactly one error line, which holds every fragment."""
    text = process.text()
    assert "Traceback" not in text, text
    errors = [line for line in process.log_lines() if line.get("level") in ("error", "critical")]
    assert len(errors) == 1, f"expected one error line, got:\n{process.tail()}"
    message = json.dumps(errors[0])
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message}"
    return message


@contextlib.contextmanager
def service_processes(*processes: ServiceProcess):
    try:
        yield processes
    finally:
        for process in processes:
            process.close()


class TestEveryComponentUnderItsOwnUser:
    async def test_apache_a_command_goes_through_to_its_event_and_email(self, settings, secure_kafka, mailbox, tmp_path):
        """Over SASL_SSL with idempotent producers, each under its own user and ACLs: `topics create` (admin),
        `send --wait` and `lag` (operator), the worker, the notifier and the gateway carry commands to events and
        emails."""
        await topics_created(settings, secure_kafka)
        await grant(secure_kafka, settings, worker="worker", notifier="notifier", gateway="gateway",
                    operator="operator")
        gateway_settings = as_gateway(settings, secure_kafka, tmp_path)
        worker = ServiceProcess("worker", settings_env(as_user(settings, secure_kafka, "worker")), "secure-worker")
        notifier = ServiceProcess("notifier", settings_env(as_user(settings, secure_kafka, "notifier")), "secure-notifier")
        gateway = ServiceProcess("gateway", settings_env(gateway_settings), "secure-gateway")
        with service_processes(worker, notifier, gateway):
            await worker.wait_assigned()
            await notifier.wait_assigned()
            operator = settings_env(as_user(settings, secure_kafka, "operator"))
            sent = ok(await run_cli_async(operator, "send", "--wait", "--timeout", "30", json.dumps(CHANGE)))
            events = [json.loads(line) for line in sent.stdout.splitlines()[1:]]
            assert [e["type"] for e in events] == ["OrderStatusChanged"], sent.stdout
            await wait_until(lambda: _mails_of(mailbox, events[0]["event_id"]), 30, "the change's email")

            token = issue_token(PRIVATE, sub="staff-1", role="staff", issuer=ISSUER, audience=AUDIENCE)

            async def gateway_answer():
                try:
                    async with aiohttp.ClientSession() as session:
                        async with session.put(f"http://127.0.0.1:{gateway_settings.gateway_port}/api/orders/1033/status",
                                               json={"status": 3}, headers={"Authorization": f"Bearer {token}"}) as r:
                            return r.status, await r.json()
                except aiohttp.ClientConnectionError:
                    assert gateway.proc.poll() is None, gateway.tail()
                    return None

            assert await wait_until(gateway_answer, 60, "the gateway's answer", interval=0.2) == (200, {})

            rows = json.loads(ok(await run_cli_async(operator, "lag", "--json")).stdout)
            assert {(row["group"], row["topic"]) for row in rows} == {
                (settings.worker_group, settings.commands_topic), (settings.notifier_group, settings.events_topic)}
            for process in (gateway, notifier, worker):
                assert await process.terminate() == 0, process.tail()


class TestCredentialsAreChecked:
    @pytest.mark.parametrize("args", [["send", json.dumps(CHANGE)], ["topics", "create"], ["lag"]],
                             ids=["send", "topics-create", "lag"])
    async def test_apache_a_wrong_password_is_one_line(self, settings, secure_kafka, args):
        """A wrong SCRAM password: one line saying the broker refused the user's credentials, exit 1."""
        env = settings_env(as_user(settings, secure_kafka, "operator", password="not-the-password"))
        line = user_error(await run_cli_async(env, *args), "refused the SASL credentials of user 'operator'",
                          "SCRAM-SHA-512")
        assert "not-the-password" not in line

    @pytest.mark.parametrize("args", [["send", json.dumps(CHANGE)], ["topics", "create"]], ids=["send", "topics-create"])
    async def test_apache_a_wrong_ca_is_one_line(self, settings, secure_kafka, args):
        """A CA that did not sign the broker's certificate: one line naming the certificate check, exit 1."""
        env = settings_env(as_user(settings, secure_kafka, "admin", cafile=secure_kafka.pki.wrong_ca_cert))
        user_error(await run_cli_async(env, *args), "certificate", "CERTIFICATE_VERIFY_FAILED",
                   "ORDERSTATUS_KAFKA_SSL_CAFILE")

    @pytest.mark.parametrize(("command", "problem", "fragments"), [
        ("worker", "password", ["refused the SASL credentials of user 'worker'"]),
        ("notifier", "ca", ["CERTIFICATE_VERIFY_FAILED", "ORDERSTATUS_KAFKA_SSL_CAFILE"]),
    ], ids=["worker-wrong-password", "notifier-wrong-ca"])
    async def test_apache_a_process_exits_with_one_clear_line(self, settings, secure_kafka, command, problem,
                                                              fragments):
        """A worker or notifier whose credentials or CA the broker refuses stops at once with exit 1 and one error
        line, instead of backing off for ever as if Kafka were down."""
        await seed_database(url_of(settings))
        wrong = {"password": "not-the-password"} if problem == "password" else {"cafile": secure_kafka.pki.wrong_ca_cert}
        with service_processes(ServiceProcess(command, settings_env(as_user(settings, secure_kafka, command, **wrong)),
                                              f"refused-{command}")) as (process,):
            assert await _exit_code(process) == 1, process.tail()
            _one_error_line(process, *fragments)


class TestPermissionsAreChecked:
    async def test_apache_a_worker_that_may_not_read_the_commands_exits_clearly(self, settings, secure_kafka):
        """A worker whose user lacks Read on the commands topic exits 1 with one line naming the topic."""
        await topics_created(settings, secure_kafka)
        await grant(secure_kafka, settings, worker="worker", without={(ResourceType.TOPIC, settings.commands_topic)})
        with service_processes(ServiceProcess("worker", settings_env(as_user(settings, secure_kafka, "worker")),
                                              "unauthorised-worker")) as (process,):
            assert await _exit_code(process) == 1, process.tail()
            _one_error_line(process, "not authorised", settings.commands_topic, "'worker'")

    async def test_apache_a_notifier_that_may_not_use_its_group_exits_clearly(self, settings, secure_kafka):
        """A notifier whose user lacks Read on its consumer group exits 1 with one line naming the group."""
        await topics_created(settings, secure_kafka)
        await grant(secure_kafka, settings, notifier="notifier",
                    without={(ResourceType.GROUP, settings.notifier_group)})
        with service_processes(ServiceProcess("notifier", settings_env(as_user(settings, secure_kafka, "notifier")),
                                              "unauthorised-notifier")) as (process,):
            assert await _exit_code(process) == 1, process.tail()
            _one_error_line(process, "not authorised", settings.notifier_group, "'notifier'")

    async def test_apache_a_gateway_that_may_not_read_the_events_exits_clearly(self, settings, secure_kafka, tmp_path):
        """A gateway whose user lacks Read on the events topic exits 1 with one line naming the topic, instead of
        waiting for ever as if the topic did not exist yet."""
        await topics_created(settings, secure_kafka)
        await grant(secure_kafka, settings, gateway="gateway", without={(ResourceType.TOPIC, settings.events_topic)})
        with service_processes(ServiceProcess("gateway", settings_env(as_gateway(settings, secure_kafka, tmp_path)),
                                              "unauthorised-gateway")) as (process,):
            assert await _exit_code(process) == 1, process.tail()
            _one_error_line(process, "not authorised", settings.events_topic, "'gateway'")

    async def test_apache_a_notifier_whose_group_acl_is_revoked_exits_clearly(self, settings, secure_kafka):
        """A running notifier whose group ACL is deleted exits 1 with one line naming the group."""
        await topics_created(settings, secure_kafka)
        await grant(secure_kafka, settings, notifier="notifier")
        with service_processes(ServiceProcess("notifier", settings_env(as_user(settings, secure_kafka, "notifier")),
                                              "revoked-notifier")) as (process,):
            await process.wait_assigned()
            await revoke(secure_kafka, "notifier", ResourceType.GROUP, settings.notifier_group)
            assert await _exit_code(process) == 1, process.tail()
            _one_error_line(process, "not authorised", settings.notifier_group, "'notifier'")

    @pytest.mark.parametrize(("command", "user", "component", "refused"), [
        ("lag", "stranger", None, "topic"), ("lag", "gateway", "gateway", "group"),
        ("replay", "gateway", "gateway", "group")], ids=["lag-no-topic-acl", "lag-no-group-acl", "replay-no-group-acl"])
    async def test_apache_ops_commands_without_the_acls_they_need_are_one_line(self, settings, secure_kafka, command,
                                                                             user, component, refused):
        """`lag` or `replay` by a user that may not describe the topics or the groups: one line naming what was
        refused, not a missing topic or an aiokafka error."""
        await topics_created(settings, secure_kafka)
        if component:
            await grant(secure_kafka, settings, **{user: component})
        args = ["lag"] if command == "lag" else ["replay", "--group", settings.worker_group, "--topic",
                                                  settings.commands_topic, "--to-earliest"]
        named = settings.commands_topic if refused == "topic" else settings.worker_group
        user_error(await run_cli_async(settings_env(as_user(settings, secure_kafka, user)), *args),
                   "not authorised", named, f"'{user}'")

    async def test_apache_a_worker_that_may_not_write_the_events_stops_and_parks_nothing(self, settings, secure_kafka):
        """A worker whose user lacks Write on the events topic exits 1 with one line naming the topic once the relay
        meets the refusal; the event is neither lost nor parked, and once the ACL is granted a worker publishes it."""
        await topics_created(settings, secure_kafka)
        await grant(secure_kafka, settings, worker="worker", operator="operator",
                    without={(ResourceType.TOPIC, settings.events_topic)})
        worker_env = settings_env(as_user(settings, secure_kafka, "worker"))
        with service_processes(ServiceProcess("worker", worker_env, "unpublishing-worker")) as (process,):
            await process.wait_assigned()
            sent = ok(await run_cli_async(settings_env(as_user(settings, secure_kafka, "operator")), "send",
                                          json.dumps(CHANGE)))
            command_id = json.loads(sent.stdout)["command_id"]
            assert await _exit_code(process) == 1, process.tail()
            _one_error_line(process, "not authorised", settings.events_topic, "'worker'")
        rows = await fetch(settings, "SELECT published_at, parked_at FROM outbox")
        assert len(rows) == 1 and rows[0]["published_at"] is None and rows[0]["parked_at"] is None, rows
        await grant(secure_kafka, settings, worker="worker")
        async with TopicReader(watching(settings, secure_kafka), settings.events_topic) as events:
            with service_processes(ServiceProcess("worker", worker_env, "granted-worker")) as (process,):
                await events.wait_for(lambda values: any(v.get("command_id") == command_id for v in values), 60,
                                      "the event published once the ACL is granted")
                assert await process.terminate() == 0, process.tail()

    async def test_apache_send_to_a_topic_the_user_may_not_write_is_one_line(self, settings, secure_kafka):
        """`send` by a user that may write other topics but not the commands topic: one line naming it."""
        await topics_created(settings, secure_kafka)
        await grant(secure_kafka, settings, worker="worker")
        user_error(await run_cli_async(settings_env(as_user(settings, secure_kafka, "worker")), "send", json.dumps(CHANGE)),
                   "not authorised", settings.commands_topic, "'worker'")


class TestIdempotentProducers:
    async def test_apache_a_refused_idempotent_producer_stops_the_worker_clearly(self, settings, secure_kafka):
        """The worker's producer is idempotent (acks=all): under a user the broker refuses InitProducerId (no Write
        anywhere) it exits 1 at start-up with one line saying so, instead of hanging or retrying."""
        await topics_created(settings, secure_kafka)
        await grant(secure_kafka, settings, stranger="notifier")  # reads only
        with service_processes(ServiceProcess("worker", settings_env(as_user(settings, secure_kafka, "stranger")),
                                              "no-idempotence-worker")) as (process,):
            assert await _exit_code(process) == 1, process.tail()
            _one_error_line(process, "idempotent producer", "'stranger'")

    async def test_apache_a_refused_idempotent_producer_is_one_line_for_send(self, settings, secure_kafka):
        """`send` under a user refused InitProducerId: one line saying the idempotent producer was refused."""
        await topics_created(settings, secure_kafka)
        await grant(secure_kafka, settings, stranger="notifier")
        user_error(await run_cli_async(settings_env(as_user(settings, secure_kafka, "stranger")), "send", json.dumps(CHANGE)),
                   "idempotent producer", "'stranger'")


# -- the console under the ACLs deploy/kafka-acls.sh gives it --------------------------------------------------

def _dead_letter_headers(settings: Settings) -> list[tuple[str, bytes]]:
    """The headers the worker puts on a dead letter (DESIGN §6.2): a command of the commands topic."""
    return [("error.reason", b"validation_failed"), ("error.message", b"status: field required"),
            ("original.topic", settings.commands_topic.encode()), ("original.partition", b"0"),
            ("original.offset", b"0")]


def _lag_rows(page: str) -> dict[tuple[str, str], list[tuple[str, int, int]]]:
    """The Health page's lag table: (group, topic) -> [(committed, end, lag) per partition]."""
    rows: dict[tuple[str, str], list] = {}
    for group, topic, committed, end, lag in re.findall(
            r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>\d+</td><td>([^<]+)</td><td>(\d+)</td><td>(\d+)</td></tr>", page):
        rows.setdefault((group, topic), []).append((committed, int(end), int(lag)))
    return rows


async def _refused(call, timeout: float = 30):
    """The exception the broker's refusal raises from `call` (an awaitable): within `timeout`, never a timeout."""
    try:
        await asyncio.wait_for(call, timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"no refusal within {timeout} s: the call waited instead") from None
    except Exception as exc:  # any error: the caller asserts it is the broker's refusal
        return exc
    raise AssertionError("the broker did not refuse the call")


def _authorization_failure(exc: BaseException, expected: type[Exception]) -> BaseException:
    """The broker's own authorization error behind `exc` (the clients made in adapters/kafka/clients.py raise it as
    `KafkaRefused` with the aiokafka error as its cause)."""
    cause = exc.__cause__ if isinstance(exc, KafkaRefused) else exc
    assert isinstance(cause, expected), f"{type(exc).__name__}: {exc} (cause {cause!r})"
    return cause


class TestTheConsoleUnderItsDeployedAcls:
    async def test_apache_the_console_indexes_the_dlq_shows_lag_and_redrives(self, settings, secure_kafka,
                                                                             tmp_path):
        """Under user `console` with exactly the ACLs of deploy/kafka-acls.sh: the dead-letter indexer lists a dead
        letter, the letter opens in full, the redrive sends it back to the commands topic (redrive.count 1), and the
        Health page shows both groups' lag, the worker's counting the redriven command."""
        await topics_created(settings, secure_kafka)
        await grant_as_deployed(secure_kafka, settings, "console")
        letter = {**CHANGE, "command_id": str(uuid.uuid4())}
        async with Producer(watching(settings, secure_kafka)) as producer:
            [sent] = await producer.send(settings.dlq_topic, [letter], headers=_dead_letter_headers(settings))
        position = f"{sent.partition}:{sent.offset}"
        console = console_settings(as_user(settings, secure_kafka, "console"), tmp_path)
        async with running_console(console) as base, ConsoleClient(base) as manager:
            await manager.sign_in(console_token("manager"))
            await manager.wait_until_listed(sent.partition, sent.offset, "/dead-letters?reason=validation_failed", 60)
            status, page = await manager.get(f"/dead-letters/{sent.partition}/{sent.offset}")
            assert status == 200 and letter["command_id"] in page, page[:2000]
            form = {"csrf": await manager.csrf(), "mode": "selected", "position": position, "step": "confirm"}
            status, page = await manager.post("/dead-letters/redrive", form)
            assert status == 200 and "<strong>1</strong> redriven" in page and "redrive.count 1" in page, page[:3000]
            async with TopicReader(watching(settings, secure_kafka), settings.commands_topic) as commands:
                await commands.wait_for(lambda values: [v.get("command_id") for v in values] == [letter["command_id"]],
                                        30, "the redriven command")
                assert ("redrive.count", b"1") in commands.records[0].headers
            status, page = await manager.get("/health")
            assert status == 200 and "lag unavailable" not in page, page[:3000]
            lag = _lag_rows(page)
            assert set(lag) == {(settings.worker_group, settings.commands_topic),
                                (settings.notifier_group, settings.events_topic)}, page[:3000]
            assert sorted(lag[(settings.worker_group, settings.commands_topic)]) == [("–", 0, 0), ("–", 1, 1)], lag

    @pytest.mark.parametrize("topic", ["commands", "events"])
    async def test_apache_the_console_may_not_read_the_commands_or_the_events(self, settings, secure_kafka, topic):
        """A group-less reader under user `console` (as the console reads the DLQ) fetching a record of the commands
        or the events topic: the broker answers TopicAuthorizationFailed, though the topic holds a record."""
        await topics_created(settings, secure_kafka)
        await grant_as_deployed(secure_kafka, settings, "console")
        name = getattr(settings, f"{topic}_topic")
        async with Producer(watching(settings, secure_kafka)) as producer:
            [sent] = await producer.send(name, [{**CHANGE, "command_id": str(uuid.uuid4())}])

        async def read_it():
            async with topic_records(as_user(settings, secure_kafka, "console"), name) as reader:
                await reader.get(sent.partition, sent.offset)

        cause = _authorization_failure(await _refused(read_it()), TopicAuthorizationFailedError)
        assert name in str(cause)

    async def test_apache_the_console_may_not_write_the_events(self, settings, secure_kafka):
        """The console's own producer (idempotent, as run_console makes it) sending to the events topic: the broker
        answers TopicAuthorizationFailed, and nothing reaches the topic."""
        await topics_created(settings, secure_kafka)
        await grant_as_deployed(secure_kafka, settings, "console")
        producer = make_producer(as_user(settings, secure_kafka, "console"))
        await producer.start()
        try:
            refused = await _refused(producer.send_and_wait(settings.events_topic, b"{}", key=b"1033"))
        finally:
            await producer.stop()
        cause = _authorization_failure(refused, TopicAuthorizationFailedError)
        assert settings.events_topic in str(cause)
        async with TopicReader(watching(settings, secure_kafka), settings.events_topic) as events:
            assert await events.poll(timeout_ms=1000) == [] and events.records == []

    @pytest.mark.parametrize("group", ["worker", "notifier"])
    async def test_apache_the_console_may_not_join_the_workers_or_the_notifiers_group(self, settings, secure_kafka,
                                                                                      group):
        """A consumer under user `console` in the worker's or the notifier's group (on the DLQ, which it may read):
        the broker refuses the join with GroupAuthorizationFailed; Describe, which lag needs, is not membership."""
        await topics_created(settings, secure_kafka)
        await grant_as_deployed(secure_kafka, settings, "console")
        name = getattr(settings, f"{group}_group")
        consumer = make_consumer(as_user(settings, secure_kafka, "console"), name, settings.dlq_topic)

        async def join():
            await consumer.start()  # aiokafka joins the group of a subscription as it starts
            await consumer.getmany(timeout_ms=1000)

        try:
            refused = await _refused(join())
        finally:
            await consumer.stop()
        cause = _authorization_failure(refused, GroupAuthorizationFailedError)
        assert name in str(cause)


# -- the gateway while its Write ACL is revoked ----------------------------------------------------------------

class _GatewayCaller:
    """A staff caller of a gateway subprocess: Wordbee's status change and transitions, JSON answers."""

    def __init__(self, gateway: ServiceProcess, port: int) -> None:
        self.gateway, self.base = gateway, f"http://127.0.0.1:{port}"
        self.headers = {"Authorization": "Bearer " + issue_token(PRIVATE, sub="staff-1", role="staff",
                                                                issuer=ISSUER, audience=AUDIENCE)}

    async def _call(self, method: str, path: str, **options) -> tuple[int, dict] | None:
        try:
            async with aiohttp.ClientSession() as session:
                async with session.request(method, self.base + path, headers=self.headers, **options) as response:
                    text = await response.text()
                    try:
                        return response.status, json.loads(text)
                    except ValueError:  # aiohttp's own plain-text 500
                        return response.status, {"text": text}
        except aiohttp.ClientConnectionError:  # not listening yet: a gateway that died says why
            assert self.gateway.proc.poll() is None, self.gateway.tail()
            return None

    async def change(self, status: int) -> tuple[int, dict] | None:
        return await self._call("PUT", "/api/orders/1033/status", json={"status": status})

    async def transitions(self) -> tuple[int, dict] | None:
        return await self._call("GET", "/api/orders/1033/status/transitions")


class TestARevokedWriteAcl:
    async def test_apache_the_gateway_answers_503_without_its_write_acl_and_recovers(self, settings, secure_kafka,
                                                                                   tmp_path):
        """The gateway's Write ACL on the commands topic deleted while it runs: a change is answered 503
        `service_unavailable` in the error shape, one error line names the authorization failure, reads are still
        served; with the ACL granted again the same change is applied (200: no OutOfOrderSequenceNumber from the
        refused batch's sequence gap), and the gateway never stopped."""
        await topics_created(settings, secure_kafka)
        await grant(secure_kafka, settings, worker="worker", gateway="gateway")
        gateway_settings = as_gateway(settings, secure_kafka, tmp_path)
        worker = ServiceProcess("worker", settings_env(as_user(settings, secure_kafka, "worker")), "acl-worker")
        gateway = ServiceProcess("gateway", settings_env(gateway_settings), "acl-gateway")
        with service_processes(worker, gateway):
            await worker.wait_assigned()
            caller = _GatewayCaller(gateway, gateway_settings.gateway_port)
            assert await wait_until(lambda: caller.change(2), 60, "the gateway's answer", interval=0.2) == (200, {})

            await revoke(secure_kafka, "gateway", ResourceType.TOPIC, settings.commands_topic)
            status, body = await caller.change(3)
            assert status == 503 and body["reason"] == "service_unavailable", (status, body, gateway.tail())
            assert set(body) == {"reason", "message"} and "gateway" not in body["message"], body  # no internals
            refused = [line for line in gateway.log_lines() if "not authorised" in json.dumps(line)]
            assert len(refused) == 1 and refused[0]["level"] == "error", gateway.tail()
            for fragment in (settings.commands_topic, "'gateway'", "Kafka refused"):
                assert fragment in json.dumps(refused[0]), refused[0]
            assert "Traceback" not in gateway.text(), gateway.tail()
            status, body = await caller.change(3)  # its new producer is refused too while the ACL is missing
            assert status == 503 and body["reason"] == "service_unavailable", (status, body, gateway.tail())
            refused = [line for line in gateway.log_lines() if "not authorised" in json.dumps(line)]
            assert len(refused) == 2 and refused[1]["level"] == "error", gateway.tail()
            status, body = await caller.transitions()
            assert status == 200 and body["current"]["id"] == 2, body
            assert await fetchval(settings, "SELECT status_id FROM orders WHERE order_id = 1033") == 2

            await grant(secure_kafka, settings, gateway="gateway")
            assert await caller.change(3) == (200, {}), gateway.tail()
            assert await fetchval(settings, "SELECT status_id FROM orders WHERE order_id = 1033") == 3
            for process in (gateway, worker):
                assert await process.terminate() == 0, process.tail()

    async def test_apache_a_console_redrive_without_its_write_acl_fails_clearly_and_recovers(self, settings,
                                                                                             secure_kafka, tmp_path):
        """The console's Write ACL on the commands topic deleted while it runs (after a first redrive): a redrive
        shows the letter failed with the broker's refusal (the page answers 200, nothing reaches the commands topic);
        with the ACL granted again the letter is redriven (no OutOfOrderSequenceNumber from the refused batch's
        sequence gap)."""
        await topics_created(settings, secure_kafka)
        await grant_as_deployed(secure_kafka, settings, "console")
        first, second = ({**CHANGE, "command_id": str(uuid.uuid4())} for _ in range(2))
        async with Producer(watching(settings, secure_kafka)) as producer:
            sent = await producer.send(settings.dlq_topic, [first, second], headers=_dead_letter_headers(settings))
        console = console_settings(as_user(settings, secure_kafka, "console"), tmp_path)
        async with running_console(console) as base, ConsoleClient(base) as manager:
            await manager.sign_in(console_token("manager"))
            csrf = await manager.csrf()
            first_form, second_form = ({"csrf": csrf, "mode": "selected", "position": f"{r.partition}:{r.offset}",
                                        "step": "confirm"} for r in sent)
            status, page = await manager.post("/dead-letters/redrive", first_form)
            assert status == 200 and "<strong>1</strong> redriven" in page, (status, page[:3000])
            await revoke(secure_kafka, "console", ResourceType.TOPIC, settings.commands_topic)
            status, page = await manager.post("/dead-letters/redrive", second_form)
            assert status == 200 and "<strong>0</strong> redriven" in page, (status, page[:3000])
            assert "not authorised" in page and settings.commands_topic in page, page[:3000]
            await grant_as_deployed(secure_kafka, settings, "console")
            status, page = await manager.post("/dead-letters/redrive", second_form)
            assert status == 200 and "<strong>1</strong> redriven" in page, (status, page[:3000])
        async with TopicReader(watching(settings, secure_kafka), settings.commands_topic) as commands:
            expected = [first["command_id"], second["command_id"]]
            await commands.wait_for(lambda values: [v.get("command_id") for v in values] == expected, 30,
                                    "each letter redriven once")
