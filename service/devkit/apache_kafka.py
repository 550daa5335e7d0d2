"""Apache Kafka, the reference engine (DESIGN §8, §12): a real broker from Maven Central, with no Docker.

`kafka_classpath()` turns `kafka/pom.xml` into a runtime classpath once (Maven's
`dependency:copy-dependencies`, cached under the project in `.kafka/<version>/lib`, never committed).
`ApacheKafka` runs one node or a cluster of three on loopback, KRaft in combined mode (every node is a
broker and a voter), each node with its own ports, log dirs and log file in the run folder, and lets the
fault tests stop, kill -9, freeze and restart a node. Readiness is a real metadata request that lists
every broker of the cluster, not a log line or an open port."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from service.devkit.embedded import InfrastructureError, free_port, parent_death

KAFKA_VERSION = "4.4.0"
POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
_SOURCE_ROOT = Path(__file__).resolve().parents[2]

# Small and quick on two cores: one network and two I/O threads, one offsets partition, no initial
# rebalance delay, a 384 MiB heap. Topics are never created by accident (as in docker-compose.yml and
# deploy/: `orderstatus topics create` makes them). Everything else is the broker's default, so what the
# tests see is what production sees.
QUICK_SETTINGS = {
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "background.threads": "2",
    "group.coordinator.threads": "1",
    "share.coordinator.threads": "1",
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "auto.create.topics.enable": "false",
}
HEAP = ["-Xms128m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]


def cache_root() -> Path:
    """Where the classpath is cached: `ORDERSTATUS_KAFKA_CACHE_DIR`, else `.kafka/` of a source checkout,
    else the user's cache folder."""
    configured = os.environ.get("ORDERSTATUS_KAFKA_CACHE_DIR")
    if configured:
        return Path(configured)
    if (_SOURCE_ROOT / "pyproject.toml").exists() and os.access(_SOURCE_ROOT, os.W_OK):
        return _SOURCE_ROOT / ".kafka"
    return Path.home() / ".cache" / "orderstatus" / "kafka"


def _java() -> str:
    """The `java` of JAVA_HOME or the PATH, checked to be 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if java is None:
        raise InfrastructureError("Apache Kafka needs Java 17 or newer: no `java` on the PATH (Debian: apt-get install openjdk-17-jre-headless)")
    shown = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    major = int(found.group(1)) if found else 0
    if major == 1 and found and found.group(2):  # "1.8.0_…" is Java 8
        major = int(found.group(2))
    if major < 17:
        raise InfrastructureError(f"Apache Kafka needs Java 17 or newer; {java} is {shown.splitlines()[0] if shown else 'unknown'}")
    return java


def kafka_classpath(root: Path | None = None) -> Path:
    """The folder of jars that runs the broker, fetched by Maven on first use and reused after."""
    folder = (root or cache_root()) / KAFKA_VERSION
    lib = folder / "lib"
    if (lib / ".complete").exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InfrastructureError("Apache Kafka's classpath is fetched with Maven: no `mvn` on the PATH (Debian: apt-get install maven)")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test sessions fetch once
        if (lib / ".complete").exists():
            return lib
        partial = folder / "lib.partial"
        shutil.rmtree(partial, ignore_errors=True)
        fetched = subprocess.run(
            [mvn, "-B", "-q", "-f", str(POM),
             "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
             f"-DoutputDirectory={partial}", "-DincludeScope=runtime"],
            capture_output=True, text=True,
        )
        if fetched.returncode != 0:
            last = (fetched.stdout + fetched.stderr).strip().splitlines()[-3:]
            raise InfrastructureError(f"Maven could not fetch Apache Kafka {KAFKA_VERSION}: {' | '.join(last)}")
        shutil.rmtree(lib, ignore_errors=True)
        partial.rename(lib)
        (lib / ".complete").write_text(KAFKA_VERSION)
    return lib


_LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


@dataclass
class KafkaNode:
    """One KRaft node in combined mode (broker and controller) of an `ApacheKafka`."""

    node_id: int
    folder: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    parent_death_signal: int | None = None  # see `embedded.parent_death`

    @property
    def properties_file(self) -> Path:
        return self.folder / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def write_config(self, settings: dict[str, str]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "data").mkdir(exist_ok=True)
        lines = [f"{key}={value}" for key, value in settings.items()]
        self.properties_file.write_text("\n".join(lines) + "\n")
        (self.folder / "log4j2.properties").write_text(_LOG4J2_PROPERTIES.format(log=self.log_file))

    def launch(self, java: str, classpath: Path) -> None:
        log = open(self.folder / "stdout.log", "ab")
        self.process = subprocess.Popen(
            [java, *HEAP, "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.folder / 'log4j2.properties'}",
             "-cp", f"{classpath}/*", "kafka.Kafka", str(self.properties_file)],
            stdout=log, stderr=log, start_new_session=True, preexec_fn=parent_death(self.parent_death_signal),
        )
        log.close()

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(sig)

    def wait_exit(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def tail(self, lines: int = 15) -> str:
        text = ""
        for path in (self.folder / "stdout.log", self.log_file):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text


@dataclass
class ApacheKafka:
    """Apache Kafka on loopback: one node (`size=1`) or a cluster of three (replication factor 3,
    `min.insync.replicas=2`), every node a broker and a controller.

    `extra` adds broker settings (listeners for SASL_SSL, an authorizer…); `listener` picks the listener
    `bootstrap_servers` names and readiness asks through (`PLAINTEXT` unless `extra` changes it).
    `stop(i)` is a clean shutdown, `kill(i)` a kill -9, `pause()`/`resume()` freeze every node (an outage
    that keeps the data), `restart(i)` starts a stopped node again on the same ports and log dirs."""

    folder: Path
    size: int = 1
    extra: dict[str, str] = field(default_factory=dict)
    format_arguments: tuple[str, ...] = ()  # e.g. the storage tool's `--add-scram` users
    cluster_id: str = field(default_factory=lambda: _kraft_cluster_id())
    nodes: list[KafkaNode] = field(default_factory=list)
    started_in_s: float | None = None
    _java: str | None = None
    _classpath: Path | None = None

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes = [KafkaNode(i + 1, self.folder / f"node-{i + 1}") for i in range(self.size)]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def node_by_id(self, node_id: int) -> KafkaNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    def _settings(self, node: KafkaNode) -> dict[str, str]:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        replication = str(min(self.size, 3))
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(node.folder / "data"),
            "offsets.topic.replication.factor": replication,
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": "2" if self.size >= 3 else "1",
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": "2" if self.size >= 3 else "1",
            "default.replication.factor": replication,
            "min.insync.replicas": "2" if self.size >= 3 else "1",
            **QUICK_SETTINGS,
        }
        for key, value in self.extra.items():
            settings[key] = value.format(port=node.port, controller_port=node.controller_port, node_id=node.node_id,
                                         folder=node.folder)
        return settings

    def start(self, timeout: float = 120) -> "ApacheKafka":
        began = time.monotonic()
        self._java = _java()
        self._classpath = kafka_classpath()
        for node in self.nodes:
            node.write_config(self._settings(node))
            if not (node.folder / "data" / "meta.properties").exists():
                formatted = subprocess.run(
                    [self._java, "-cp", f"{self._classpath}/*", f"-Dlog4j2.configurationFile={node.folder / 'log4j2.properties'}",
                     "kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(node.properties_file),
                     *self.format_arguments],
                    capture_output=True, text=True,
                )
                if formatted.returncode != 0:
                    raise InfrastructureError(f"formatting Kafka node {node.node_id} failed: "
                                              f"{(formatted.stdout + formatted.stderr).strip()[-400:]}")
        for node in self.nodes:
            node.launch(self._java, self._classpath)
        try:
            self.wait_ready(timeout - (time.monotonic() - began))
        except BaseException:
            self.stop_all()
            raise
        self.started_in_s = time.monotonic() - began
        return self

    def wait_ready(self, timeout: float, brokers: int | None = None) -> None:
        """Until a metadata request through every live node lists `brokers` (default: every live node)."""
        deadline = time.monotonic() + max(timeout, 1)
        expected = brokers if brokers is not None else sum(node.alive for node in self.nodes)
        last_error = "no answer"
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None and node.process.returncode not in (0, -9, -15, 143, 137):
                    raise InfrastructureError(f"Kafka node {node.node_id} exited with code {node.process.returncode}:\n{node.tail()}")
            live = [node for node in self.nodes if node.alive]
            if not all(_listening(node.port) for node in live):
                time.sleep(0.2)
                continue
            try:
                seen = [len(_brokers_seen(f"127.0.0.1:{node.port}")) for node in live]
                if seen and all(count >= expected for count in seen):
                    return
                last_error = f"brokers seen per node: {seen}, want {expected}"
            except Exception as exc:  # not up yet: connection refused, no controller yet, …
                last_error = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        raise InfrastructureError(f"Apache Kafka did not become ready within {timeout:.0f}s ({last_error}):\n"
                                  + "\n".join(node.tail() for node in self.nodes))

    def stop(self, index: int | None = None, timeout: float = 60) -> None:
        """A clean shutdown (SIGTERM): of node `index`, or of the whole cluster."""
        if index is None:
            self.stop_all(timeout)
            return
        node = self.nodes[index]
        node.signal(signal.SIGCONT)
        node.signal(signal.SIGTERM)
        node.wait_exit(timeout)

    def stop_all(self, timeout: float = 60) -> None:
        for node in self.nodes:
            node.signal(signal.SIGCONT)
            node.signal(signal.SIGTERM)
        for node in self.nodes:
            node.wait_exit(timeout)

    def kill(self, index: int) -> None:
        node = self.nodes[index]
        node.signal(signal.SIGKILL)
        node.wait_exit(10)

    def restart(self, index: int, timeout: float = 90) -> None:
        """Start node `index` again (same ports, same data) and wait until the cluster lists it."""
        node = self.nodes[index]
        assert not node.alive, "restart a node that is stopped"
        assert self._java is not None and self._classpath is not None
        node.launch(self._java, self._classpath)
        self.wait_ready(timeout)

    def pause(self) -> None:
        for node in self.nodes:
            node.signal(signal.SIGSTOP)

    def resume(self) -> None:
        for node in self.nodes:
            node.signal(signal.SIGCONT)


def _kraft_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 without padding (what `random-uuid` prints).

    Never one that starts with "-": the storage tool would read it as an option and refuse to format (one
    start in 64). Kafka's own `Uuid.randomUuid()` draws again in that case too."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _brokers_seen(bootstrap: str, timeout: float = 5) -> list[int]:
    """The broker ids a real metadata request through `bootstrap` answers with (aiokafka, in a thread of
    its own so it works from inside a running event loop too)."""
    result: list = []

    async def ask() -> None:
        from aiokafka.client import AIOKafkaClient

        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000),
                                metadata_max_age_ms=1000)
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
            metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout)
            if metadata.controller is None:
                raise RuntimeError("no active controller yet")
            result.extend(sorted(broker.nodeId for broker in metadata.brokers()))
        finally:
            await client.close()

    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(ask())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout + 5)
    if failure:
        raise failure[0]
    return result
