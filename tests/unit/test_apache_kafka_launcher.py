"""The Apache Kafka launcher's checks, before any JVM starts: a missing or old Java and a missing Maven each
fail in one clear line, the classpath is fetched once and reused, a node's configuration is KRaft combined."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from service.devkit import apache_kafka
from service.devkit.apache_kafka import ApacheKafka, kafka_classpath
from service.devkit.embedded import InfrastructureError


def fake_tool(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


class TestJavaAndMaven:
    def test_no_java_is_one_clear_line(self, tmp_path, monkeypatch):
        """No `java` on the PATH nor in JAVA_HOME: the error names Java 17 and how to install it."""
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.delenv("JAVA_HOME", raising=False)
        with pytest.raises(InfrastructureError, match="needs Java 17 or newer: no `java`"):
            ApacheKafka(tmp_path / "run").start()

    def test_an_old_java_is_refused_with_its_version(self, tmp_path, monkeypatch):
        """A Java 11 is refused before anything is fetched, and the message shows the version found."""
        fake_tool(tmp_path, "java", 'echo \'openjdk version "11.0.2" 2019-01-15\' >&2')
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.delenv("JAVA_HOME", raising=False)
        with pytest.raises(InfrastructureError, match=r'needs Java 17 or newer; .* is openjdk version "11\.0\.2"'):
            ApacheKafka(tmp_path / "run").start()

    def test_java_8_is_read_as_8_not_1(self, tmp_path, monkeypatch):
        """The old "1.8.0" version scheme is read as Java 8 (refused), not as Java 1."""
        fake_tool(tmp_path, "java", 'echo \'java version "1.8.0_392"\' >&2')
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.delenv("JAVA_HOME", raising=False)
        with pytest.raises(InfrastructureError, match='1.8.0_392'):
            apache_kafka._java()

    def test_no_maven_is_one_clear_line_and_leaves_no_half_cache(self, tmp_path, monkeypatch):
        """No `mvn`: the error says Maven fetches the classpath; nothing is marked complete."""
        monkeypatch.setenv("PATH", str(tmp_path))
        with pytest.raises(InfrastructureError, match="fetched with Maven: no `mvn`"):
            kafka_classpath(tmp_path / "cache")
        assert not (tmp_path / "cache" / apache_kafka.KAFKA_VERSION / "lib" / ".complete").exists()

    def test_a_failed_fetch_names_mavens_last_lines(self, tmp_path, monkeypatch):
        """Maven failing (no registry, say) gives one line with Maven's own last words, and no cache."""
        fake_tool(tmp_path, "mvn", 'echo "[ERROR] Could not resolve org.apache.kafka:kafka_2.13"; exit 1')
        monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + "/usr/bin:/bin")
        with pytest.raises(InfrastructureError, match="Could not resolve org.apache.kafka:kafka_2.13"):
            kafka_classpath(tmp_path / "cache")
        assert not (tmp_path / "cache" / apache_kafka.KAFKA_VERSION / "lib").exists()

    def test_the_classpath_is_fetched_once_and_reused(self, tmp_path, monkeypatch):
        """A second call finds the completed cache and runs no Maven at all."""
        calls = tmp_path / "calls"
        fake_tool(tmp_path, "mvn", f'echo run >> {calls}; for a in "$@"; do case "$a" in -DoutputDirectory=*) '
                                   'mkdir -p "${a#-DoutputDirectory=}"; touch "${a#-DoutputDirectory=}/kafka.jar";; '
                                   'esac; done')
        monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + "/usr/bin:/bin")
        first = kafka_classpath(tmp_path / "cache")
        second = kafka_classpath(tmp_path / "cache")
        assert first == second and (first / "kafka.jar").exists()
        assert calls.read_text().count("run") == 1


class TestNodeConfiguration:
    def test_three_nodes_share_the_voters_and_replicate_three_ways(self, tmp_path):
        """Every node of a three-node cluster lists all three voters, with RF 3 and min ISR 2 by default."""
        cluster = ApacheKafka(tmp_path, size=3)
        settings = [cluster._settings(node) for node in cluster.nodes]
        voters = {s["controller.quorum.voters"] for s in settings}
        assert len(voters) == 1 and voters.pop().count("@127.0.0.1:") == 3
        assert {s["node.id"] for s in settings} == {"1", "2", "3"}
        assert all(s["default.replication.factor"] == "3" and s["min.insync.replicas"] == "2" for s in settings)
        assert all(s["process.roles"] == "broker,controller" for s in settings)

    def test_one_node_replicates_once_and_extra_settings_see_the_nodes_ports(self, tmp_path):
        """A single node keeps every internal topic at RF 1; `extra` is formatted with the node's own ports."""
        broker = ApacheKafka(tmp_path, extra={"listeners": "SASL_SSL://127.0.0.1:{port}"})
        settings = broker._settings(broker.nodes[0])
        assert settings["offsets.topic.replication.factor"] == "1" and settings["min.insync.replicas"] == "1"
        assert settings["listeners"] == f"SASL_SSL://127.0.0.1:{broker.nodes[0].port}"
        assert settings["auto.create.topics.enable"] == "false"


class TestClusterId:
    def test_a_cluster_id_never_starts_with_a_dash(self, tmp_path):
        """The storage tool reads an id starting with "-" as an option and refuses to format: none is drawn
        (one start in 64 failed before; 2,000 draws would all pass by chance about once in 10^14)."""
        ids = [ApacheKafka(tmp_path / f"run-{i}").cluster_id for i in range(2000)]
        assert not [i for i in ids if i.startswith("-")]
        assert len(set(ids)) == len(ids) and all(len(i) == 22 for i in ids)
