"""`orderstatus dev`: the embedded default. Postgres, broker and SMTP sink from wheels, the schema,
the sample rules and orders, the topics, then the worker and notifier as child processes, until Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import click

from service.runtime.auth import issue_token, new_key_pair

from service.devkit.apache_kafka import KAFKA_VERSION, ApacheKafka, KafkaNode
from service.devkit.embedded import (EmbeddedBroker, EmbeddedPostgres, InfrastructureError, SmtpSink, free_port,
                                     parent_death, process_alive, process_cmdline)

SAMPLES = Path(__file__).resolve().parent.parent / "devkit" / "samples"


class DevPorts:
    """The ports of the dev stack. Each is the one the last run on this data directory used (kept in
    `ports.json`, so the exports a user copied keep working), else the usual one of DESIGN §3, else any
    free one; a port other than the usual is announced in the banner. The probe binds with SO_REUSEADDR,
    as the servers do: a port left in TIME_WAIT by a run stopped a moment ago is free, not busy."""

    def __init__(self, data_dir: Path) -> None:
        self.file = data_dir / "ports.json"
        try:
            self.remembered = {k: int(v) for k, v in json.loads(self.file.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            self.remembered = {}
        self.chosen: dict[str, int] = {}
        self.usual: dict[str, int] = {}

    def take(self, name: str, usual: int) -> int:
        self.usual[name] = usual
        for candidate in dict.fromkeys((self.remembered.get(name), usual)):
            if candidate is not None and candidate not in self.chosen.values() and _bindable(candidate):
                self.chosen[name] = candidate
                break
        else:
            self.chosen[name] = free_port()
        self.file.write_text(json.dumps({**self.remembered, **self.chosen}, indent=1))
        return self.chosen[name]

    def fallbacks(self) -> list[str]:
        return [f"{name} on {port} ({self.usual[name]} was busy)" for name, port in self.chosen.items()
                if port != self.usual[name]]


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class DevProcesses:
    """What this run started, by pid, in `dev.pids` in the data directory. A run that died without
    stopping them (kill -9, a crash, a power-off) left the file behind: the next run stops what still
    runs of it (the pid's command line must still match, so a reused pid is never signalled) before
    it starts; a dev run still alive on the same data directory is named in one line instead."""

    def __init__(self, data_dir: Path) -> None:
        self.file = data_dir / "dev.pids"
        self.entries: list[dict] = []

    def claim(self) -> None:
        """Stop what a dead run left; refuse (InfrastructureError) when a live run owns the directory."""
        try:
            old = json.loads(self.file.read_text())
        except (OSError, ValueError):
            old = {}
        owner = old.get("dev") or {}
        pid = owner.get("pid")
        if pid and pid != os.getpid() and _same_process(pid, owner.get("cmdline")):
            raise InfrastructureError(f"another `orderstatus dev` (pid {pid}) runs on {self.file.parent}: stop it "
                                      f"(Ctrl-C in its shell, or `kill {pid}`) or pass another --data-dir")
        for entry in old.get("children", []):
            if _same_process(entry["pid"], entry["cmdline"]):
                click.echo(f"stopping {entry['name']} (pid {entry['pid']}) left running by an earlier run", err=True)
                _end(entry["pid"], entry["signal"])
        self.entries = []
        self._write()

    def add(self, name: str, process: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
        if process is None:
            return
        self.entries.append({"name": name, "pid": process.pid, "cmdline": process_cmdline(process.pid),
                             "signal": int(sig)})
        self._write()

    def _write(self) -> None:
        self.file.write_text(json.dumps({"dev": {"pid": os.getpid(), "cmdline": process_cmdline(os.getpid())},
                                         "children": self.entries}, indent=1))

    def release(self) -> None:
        self.file.unlink(missing_ok=True)


def _same_process(pid: int, cmdline: list[str] | None) -> bool:
    return process_alive(pid) and bool(cmdline) and process_cmdline(pid) == cmdline


def _end(pid: int, sig: int, timeout: float = 20) -> None:
    """Signal a stale process and wait until it is gone; SIGKILL it (and its children) after `timeout`."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while process_alive(pid):
        if time.monotonic() > deadline:
            for child in _children_of(pid) + [pid]:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
        time.sleep(0.05)


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _cli(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "service.entrypoints.cli", *args], env=env, check=True)


def console_link(env: dict, token: str, base_url: str) -> str:
    """A one-time sign-in link of the console for the token's principal (`orderstatus console link`; the token
    goes in on stdin, and only a code that is spent on first use goes into the URL)."""
    return subprocess.run([sys.executable, "-m", "service.entrypoints.cli", "console", "link", "--base-url", base_url],
                          env=env, input=token, capture_output=True, text=True, check=True).stdout.strip()


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
        # the private key is 0600 from its first byte: written to a new file opened with that mode, then renamed
        staged = directory / f".dev-signing-key.{os.getpid()}.tmp"
        staged.unlink(missing_ok=True)
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(private_pem)
        os.replace(staged, private)
        public.write_bytes(public_pem)
    elif private.stat().st_mode & 0o077:  # a key an older run (or a copy) left readable by others: tightened
        private.chmod(0o600)
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


def dev_broker(kind: str, data_dir: Path, ports: DevPorts) -> EmbeddedBroker | ApacheKafka:
    """The dev stack's broker: the embedded stand-in (memory only), or one Apache Kafka node whose log
    dirs stay in the data directory, so its topics and offsets outlive a restart like Postgres's rows."""
    if kind == "embedded":
        return EmbeddedBroker(port=ports.take("Kafka", 9092), log_path=data_dir / "broker.log",
                              parent_death_signal=signal.SIGTERM)
    folder = data_dir / "kafka"
    return ApacheKafka(folder, nodes=[KafkaNode(1, folder / "node-1", port=ports.take("Kafka", 9092),
                                                controller_port=ports.take("Kafka controller", 9093),
                                                parent_death_signal=signal.SIGTERM)])


def describe_broker(broker: EmbeddedBroker | ApacheKafka) -> str:
    if isinstance(broker, ApacheKafka):
        return f"{broker.bootstrap_servers} (Apache Kafka {KAFKA_VERSION}, log: {broker.nodes[0].log_file})"
    return f"{broker.bootstrap_servers} (tansu, memory storage)"


# the service's processes the dev stack runs, each with the port of its /readyz (a setting of DESIGN §3)
PROCESSES = (("worker", "ORDERSTATUS_HTTP_PORT", 8080), ("notifier", "ORDERSTATUS_NOTIFIER_HTTP_PORT", 8081),
             ("gateway", "ORDERSTATUS_GATEWAY_PORT", 8082), ("console", "ORDERSTATUS_CONSOLE_PORT", 8083))

# what a second shell needs for every CLI command (`orderstatus tokens issue` and `notifications resend`
# included); the HTTP ports stay out, so a second worker started there does not collide with the first
EXPORTED = ("ORDERSTATUS_DATABASE_URL", "ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS", "ORDERSTATUS_KAFKA_ENABLE_IDEMPOTENCE",
            "ORDERSTATUS_SMTP_HOST", "ORDERSTATUS_SMTP_PORT", "ORDERSTATUS_ACTOR_AUTH", "ORDERSTATUS_AUTH_PUBLIC_KEYS",
            "ORDERSTATUS_AUTH_PRIVATE_KEY_FILE", "ORDERSTATUS_AUTH_ISSUER", "ORDERSTATUS_AUTH_AUDIENCE")


def _get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (OSError, ValueError):
        return 0, {}


def process_ready(port: int) -> bool:
    """/readyz answers 200 and, for a consumer, /status shows partitions assigned (lag lists them)."""
    status, _ = _get_json(f"http://127.0.0.1:{port}/readyz")
    if status != 200:
        return False
    status, body = _get_json(f"http://127.0.0.1:{port}/status")
    return status == 200 and ("lag" not in body or bool(body["lag"]))


class DevStopped(Exception):
    """A signal asked the dev stack to stop while it was starting."""


def _cause(log: Path) -> str:
    """A process's own one-line error (DESIGN §4: `Error: …`) from its log, if it wrote one."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("Error: ")]
    return f" ({errors[-1]})" if errors else ""


async def _cancelled_by_signals(coro) -> bool:
    """Run `coro` until it ends (True) or a stop signal cancels it (False): a signal handler that raises
    inside an event loop would break whatever connection it lands in."""
    task = asyncio.ensure_future(coro)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
        return True
    except asyncio.CancelledError:
        return False
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


def exports_block(env: dict, urls: dict[str, str], tokens: dict[str, str]) -> str:
    lines = [f"export {k}={shlex.quote(env[k])}" for k in EXPORTED]
    lines += [f"export {name}={shlex.quote(url)}" for name, url in urls.items()]
    lines += [f"export {name}={token}" for name, token in tokens.items()]
    return "\n".join(f"  {line}" for line in lines)


def run_dev(data_dir: Path, demo: bool = False, actor_auth: str = "off", broker_kind: str = "embedded",
            reset: bool = False) -> int:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    started_at = time.monotonic()
    stopping = {"now": False, "raise": True}

    def ask_stop(*_):
        stopping["now"] = True
        if stopping["raise"]:
            stopping["raise"] = False
            raise DevStopped()

    # Ctrl-C, `kill`, a closed terminal: the same orderly stop of everything started here
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, ask_stop)
    pids = DevProcesses(data_dir)
    children: list[subprocess.Popen] = []
    postgres = broker = smtp = None
    try:
        pids.claim()
        if reset:
            reset_data_dir(data_dir)
        maildir = data_dir / "mail"
        ports = DevPorts(data_dir)
        postgres = EmbeddedPostgres(data_dir / "postgres", port=ports.take("PostgreSQL", 5432),
                                    parent_death_signal=signal.SIGINT)
        broker = dev_broker(broker_kind, data_dir, ports)
        smtp = SmtpSink(port=ports.take("SMTP sink", 2525), maildir=maildir)
        postgres.start()
        pids.add("PostgreSQL", postgres.process, signal.SIGINT)
        broker.start()
        for node in getattr(broker, "nodes", [broker]):
            pids.add("the broker", node.process)
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
            "ORDERSTATUS_ACTOR_AUTH": actor_auth,
            "ORDERSTATUS_AUTH_PUBLIC_KEYS": str(public_key),
            "ORDERSTATUS_AUTH_PRIVATE_KEY_FILE": str(private_key),
            "ORDERSTATUS_AUTH_ISSUER": "orderstatus-dev",
            "ORDERSTATUS_AUTH_AUDIENCE": "orderstatus",
        })
        for name, variable, usual in PROCESSES:
            env[variable] = str(ports.take(name, usual))
        _cli(env, "migrate")
        _cli(env, "rules", "load", str(SAMPLES / "rules.yaml"))
        _cli(env, "orders", "import", str(SAMPLES / "orders.jsonl"))
        _cli(env, "topics", "create", "--partitions", "3")
        logs = data_dir / "logs"
        logs.mkdir(exist_ok=True)
        for name, _, _ in PROCESSES:
            with open(logs / f"{name}.log", "ab") as log:
                # their own session: a terminal's Ctrl-C or hang-up reaches this process, which stops them in
                # order; SIGTERM reaches them when this process dies without doing so (kill -9)
                children.append(subprocess.Popen(
                    [sys.executable, "-m", "service.entrypoints.cli", name], env=env, stdout=log, stderr=log,
                    start_new_session=True, preexec_fn=parent_death(signal.SIGTERM),
                ))
            pids.add(name, children[-1])
        deadline = time.monotonic() + 120
        waiting = list(PROCESSES)
        while waiting:
            for child, (name, _, _) in zip(children, PROCESSES):
                if child.poll() is not None:
                    raise InfrastructureError(f"the {name} exited with code {child.returncode} while starting"
                                              f"{_cause(logs / f'{name}.log')}; see {logs}/{name}.log")
            waiting = [p for p in waiting if not process_ready(int(env[p[1]]))]
            if waiting and time.monotonic() > deadline:
                raise InfrastructureError(f"not ready within 120 s: {', '.join(p[0] for p in waiting)}; see {logs}")
            if waiting:
                time.sleep(0.1)
        signing = dict(issuer="orderstatus-dev", audience="orderstatus", ttl=timedelta(days=1))
        tokens = {
            "CLIENT_TOKEN": issue_token(private_key.read_bytes(), sub="u-7", role="client", client_id="c-1",
                                        name="Ann", **signing),
            "MANAGER_TOKEN": issue_token(private_key.read_bytes(), sub="m-1", role="manager", name="Mia (ops)",
                                         **signing),
        }
        url = {name: f"http://127.0.0.1:{env[variable]}" for name, variable, _ in PROCESSES}
        urls = {"WORKER_URL": url["worker"], "GATEWAY_URL": url["gateway"]}
        links = {"a manager": console_link(env, tokens["MANAGER_TOKEN"], url["console"]),
                 "staff": console_link(env, issue_token(private_key.read_bytes(), sub="s-1", role="staff",
                                                        name="Sam (support)", **signing), url["console"])}
        fallbacks = ports.fallbacks()
        click.echo(
            f"\norderstatus dev is up (ready in {time.monotonic() - started_at:.1f} s):\n"
            f"  PostgreSQL   {postgres.url}\n"
            f"  Kafka        {describe_broker(broker)}\n"
            f"  SMTP sink    127.0.0.1:{smtp.port}; captured emails: {maildir}/*.eml\n"
            f"  worker       {url['worker']}/readyz  read API {url['worker']}/orders/1029/history  "
            f"(log: {logs}/worker.log)\n"
            f"  notifier     {url['notifier']}/readyz  (log: {logs}/notifier.log)\n"
            f"  gateway      {url['gateway']}/docs  {url['gateway']}/readyz  (log: {logs}/gateway.log)\n"
            f"  console      {url['console']}/  (log: {logs}/console.log)\n"
            f"  actor auth   {actor_auth} (orderstatus dev --actor-auth required to enforce tokens)\n"
            + (f"  ports        not the usual: {'; '.join(fallbacks)}\n" if fallbacks else "")
            + "\nIn another shell, from this folder (tokens valid for a day; more with `orderstatus tokens issue`):\n"
            f"{exports_block(env, urls, tokens)}\n"
            "  .venv/bin/orderstatus send --token \"$CLIENT_TOKEN\" '{\"type\": \"ChangeOrderStatus\", "
            "\"order_id\": 1029, \"status\": 21, \"actor\": {\"id\": \"u-7\", \"role\": \"client\", \"client_id\": \"c-1\"}}'\n"
            "  .venv/bin/orderstatus history 1029\n"
            "  curl -H \"Authorization: Bearer $MANAGER_TOKEN\" \"$WORKER_URL/orders/1029/history\"\n"
            "\nSign in to the operator console (one-time links, valid 10 minutes; more with "
            "`orderstatus console link < token-file`):\n"
            + "".join(f"  as {who}: {link}\n" for who, link in links.items())
            + "\nCtrl-C stops everything.\n"
        )
        stopping["raise"] = False
        if demo:
            from service.devkit.demo import run_demo

            if not asyncio.run(_cancelled_by_signals(run_demo(env))):  # a Ctrl-C during the demo stops at once
                stopping["now"] = True
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, ask_stop)
        watch = ParkedWatch(f"{url['worker']}/status")
        while not stopping["now"]:
            for child, (name, _, _) in zip(children, PROCESSES):
                if child.poll() is not None:
                    click.echo(f"the {name} exited with code {child.returncode}; see {logs}/{name}.log", err=True)
                    stopping["now"] = True
            watch.check()
            time.sleep(0.2)
        return 0
    except DevStopped:
        return 0
    except subprocess.CalledProcessError as exc:
        click.echo(f"dev set-up failed: {' '.join(exc.cmd[3:])} exited with {exc.returncode}", err=True)
        return 1
    except InfrastructureError as exc:
        click.echo(f"dev set-up failed: {exc}", err=True)
        return 1
    finally:
        stopping["raise"] = False
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)  # a second Ctrl-C must not cut the stop short
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for server in (smtp, broker, postgres):
            if server is not None:
                server.stop()
        if postgres is not None:  # only a run that got past the claim owns the pid file
            pids.release()
        try:
            click.echo("orderstatus dev stopped", err=True)
        except OSError:  # the terminal is gone (SIGHUP when it was closed): nobody to tell
            pass
