"""`orderstatus dev`: the embedded default. Postgres, broker and SMTP sink from wheels, the schema,
the sample rules and orders, the topics, then the worker and notifier as child processes, until Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import click

from service.runtime.auth import issue_token, new_key_pair

from service.devkit.apache_kafka import KAFKA_VERSION, ApacheKafka, KafkaNode
from service.devkit.embedded import EmbeddedBroker, EmbeddedPostgres, InfrastructureError, SmtpSink, free_port

SAMPLES = Path(__file__).resolve().parent.parent / "devkit" / "samples"


def _port(preferred: int) -> int:
    """The usual port when it is free, so the defaults of DESIGN §3 just work; any free one otherwise."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def _cli(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "service.entrypoints.cli", *args], env=env, check=True)


class ParkedWatch:
    """Every few seconds, ask the worker's /status; say so once each time the number of parked rows grows."""

    def __init__(self, url: str, every_s: float = 5.0) -> None:
        self.url = url
        self.every_s = every_s
        self.reported = 0
        self.next_at = time.monotonic() + every_s

    def check(self) -> None:
        if time.monotonic() < self.next_at:
            return
        self.next_at = time.monotonic() + self.every_s
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:
                parked = json.load(response).get("outbox", {}).get("parked") or 0
        except (OSError, ValueError):
            return  # the worker is starting or busy; the next look will tell
        if parked > self.reported:
            click.echo(f"WARNING: {parked} outbox rows are parked (the broker refused them); "
                       "see `orderstatus outbox parked`, fix, then `orderstatus outbox retry ID…`", err=True)
        self.reported = parked


def dev_keys(directory: Path) -> tuple[Path, Path]:
    """The dev stack's token key pair (kept across runs, so issued tokens stay valid): private, public PEM."""
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / "dev-signing-key.pem", directory / "dev-signing-key.pub.pem"
    if not (private.exists() and public.exists()):
        private_pem, public_pem = new_key_pair()
        private.write_bytes(private_pem)
        private.chmod(0o600)
        public.write_bytes(public_pem)
    return private, public


# what `orderstatus dev` keeps in its data directory; `--reset` deletes these and nothing else
DEV_ENTRIES = ("postgres", "kafka", "broker.log", "mail", "logs", "auth")


def reset_data_dir(data_dir: Path) -> None:
    """Start from an empty data directory: delete what the dev stack keeps there (and only that)."""
    for name in DEV_ENTRIES:
        path = data_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def dev_broker(kind: str, data_dir: Path) -> EmbeddedBroker | ApacheKafka:
    """The dev stack's broker: the embedded stand-in (memory only), or one Apache Kafka node whose log
    dirs stay in the data directory, so its topics and offsets outlive a restart like Postgres's rows."""
    if kind == "embedded":
        return EmbeddedBroker(port=_port(9092), log_path=data_dir / "broker.log")
    folder = data_dir / "kafka"
    return ApacheKafka(folder, nodes=[KafkaNode(1, folder / "node-1", port=_port(9092), controller_port=_port(9093))])


def describe_broker(broker: EmbeddedBroker | ApacheKafka) -> str:
    if isinstance(broker, ApacheKafka):
        return f"{broker.bootstrap_servers} (Apache Kafka {KAFKA_VERSION}, log: {broker.nodes[0].log_file})"
    return f"{broker.bootstrap_servers} (tansu, memory storage)"


def run_dev(data_dir: Path, demo: bool = False, actor_auth: str = "off", broker_kind: str = "embedded",
            reset: bool = False) -> int:
    data_dir = data_dir.resolve()
    if reset:
        reset_data_dir(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    maildir = data_dir / "mail"
    postgres = EmbeddedPostgres(data_dir / "postgres", port=_port(5432))
    broker = dev_broker(broker_kind, data_dir)
    smtp = SmtpSink(port=_port(2525), maildir=maildir)
    children: list[subprocess.Popen] = []
    stopping = {"now": False}

    def ask_stop(*_):
        stopping["now"] = True

    signal.signal(signal.SIGINT, ask_stop)
    signal.signal(signal.SIGTERM, ask_stop)
    try:
        postgres.start()
        broker.start()
        smtp.start()
        private_key, public_key = dev_keys(data_dir / "auth")
        env = dict(os.environ)
        env.update({
            "ORDERSTATUS_DATABASE_URL": postgres.url,
            "ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            # the production default where the engine supports it (tansu cannot initialise an idempotent producer)
            "ORDERSTATUS_KAFKA_ENABLE_IDEMPOTENCE": "true" if isinstance(broker, ApacheKafka) else "false",
            "ORDERSTATUS_SMTP_HOST": "127.0.0.1",
            "ORDERSTATUS_SMTP_PORT": str(smtp.port),
            "ORDERSTATUS_HTTP_PORT": str(_port(8080)),
            "ORDERSTATUS_NOTIFIER_HTTP_PORT": str(_port(8081)),
            "ORDERSTATUS_ACTOR_AUTH": actor_auth,
            "ORDERSTATUS_AUTH_PUBLIC_KEYS": str(public_key),
            "ORDERSTATUS_AUTH_PRIVATE_KEY_FILE": str(private_key),
            "ORDERSTATUS_AUTH_ISSUER": "orderstatus-dev",
            "ORDERSTATUS_AUTH_AUDIENCE": "orderstatus",
        })
        _cli(env, "migrate")
        _cli(env, "rules", "load", str(SAMPLES / "rules.yaml"))
        _cli(env, "orders", "import", str(SAMPLES / "orders.jsonl"))
        _cli(env, "topics", "create", "--partitions", "3")
        logs = data_dir / "logs"
        logs.mkdir(exist_ok=True)
        for name in ("worker", "notifier"):
            log = open(logs / f"{name}.log", "ab")
            children.append(subprocess.Popen(
                [sys.executable, "-m", "service.entrypoints.cli", name], env=env, stdout=log, stderr=log,
            ))
        exports = " ".join(
            f"{k}={env[k]}" for k in ("ORDERSTATUS_DATABASE_URL", "ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS",
                                      "ORDERSTATUS_KAFKA_ENABLE_IDEMPOTENCE", "ORDERSTATUS_AUTH_PRIVATE_KEY_FILE",
                                      "ORDERSTATUS_AUTH_ISSUER", "ORDERSTATUS_AUTH_AUDIENCE")
        )
        signing = dict(issuer="orderstatus-dev", audience="orderstatus", ttl=timedelta(days=1))
        client_token = issue_token(private_key.read_bytes(), sub="u-7", role="client", client_id="c-1", name="Ann",
                                   **signing)
        manager_token = issue_token(private_key.read_bytes(), sub="m-1", role="manager", name="Mia (ops)", **signing)
        click.echo(
            "\norderstatus dev is up:\n"
            f"  PostgreSQL   {postgres.url}\n"
            f"  Kafka        {describe_broker(broker)}\n"
            f"  SMTP sink    127.0.0.1:{smtp.port}; captured emails: {maildir}/*.eml\n"
            f"  worker       http://127.0.0.1:{env['ORDERSTATUS_HTTP_PORT']}/readyz  (log: {logs}/worker.log)\n"
            f"  notifier     http://127.0.0.1:{env['ORDERSTATUS_NOTIFIER_HTTP_PORT']}/readyz  (log: {logs}/notifier.log)\n"
            f"  actor auth   {actor_auth} (orderstatus dev --actor-auth required to enforce tokens)\n"
            f"\nIn another shell (tokens valid for a day; more with `orderstatus tokens issue`):\n"
            f"  export {exports}\n"
            f"  export CLIENT_TOKEN={client_token}\n"
            f"  export MANAGER_TOKEN={manager_token}\n"
            "  .venv/bin/orderstatus send --token \"$CLIENT_TOKEN\" '{\"type\": \"ChangeOrderStatus\", "
            "\"order_id\": 1029, \"status\": 21, \"actor\": {\"id\": \"u-7\", \"role\": \"client\", \"client_id\": \"c-1\"}}'\n"
            "  .venv/bin/orderstatus history 1029\n"
            f"  curl -H \"Authorization: Bearer $MANAGER_TOKEN\" 127.0.0.1:{env['ORDERSTATUS_HTTP_PORT']}/orders/1029/history\n"
            "\nCtrl-C stops everything.\n"
        )
        if demo:
            from service.devkit.demo import run_demo

            asyncio.run(run_demo(env))
        watch = ParkedWatch(f"http://127.0.0.1:{env['ORDERSTATUS_HTTP_PORT']}/status")
        while not stopping["now"]:
            for child in children:
                if child.poll() is not None:
                    click.echo(f"a child process exited with code {child.returncode}; see {logs}", err=True)
                    stopping["now"] = True
            watch.check()
            time.sleep(0.2)
        return 0
    except subprocess.CalledProcessError as exc:
        click.echo(f"dev set-up failed: {' '.join(exc.cmd[3:])} exited with {exc.returncode}", err=True)
        return 1
    except InfrastructureError as exc:
        click.echo(f"dev set-up failed: {exc}", err=True)
        return 1
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        smtp.stop()
        broker.stop()
        postgres.stop()
        click.echo("orderstatus dev stopped", err=True)
