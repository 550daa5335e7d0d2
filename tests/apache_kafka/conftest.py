"""What only the real engine can show (`make test-kafka`): these tests run on Apache Kafka and nowhere else.

The suite's broker must be Apache Kafka (`ORDERSTATUS_TEST_BROKER=apache`); anything else fails the run
at once rather than testing the stand-in. `kafka_cluster` is a three-broker cluster of this module's own
(replication factor 3, `min.insync.replicas=2`) whose brokers a test may kill, stop and restart."""

from __future__ import annotations

import pytest

from service.devkit.apache_kafka import ApacheKafka
from service.devkit.embedded import scratch_dir
from tests.helpers.brokers import BROKER


def pytest_collection_modifyitems(config, items):
    if BROKER != "apache" and any("apache_kafka" in str(item.fspath) for item in items):
        raise pytest.UsageError("tests/apache_kafka runs on Apache Kafka only: ORDERSTATUS_TEST_BROKER=apache "
                                "(make test-kafka)")


@pytest.fixture(scope="module")
def kafka_cluster():
    """Three brokers, every one also a controller, started fresh for the module and stopped after it."""
    cluster = ApacheKafka(scratch_dir("orderstatus-test-cluster-"), size=3).start()
    try:
        yield cluster
    finally:
        cluster.stop_all()
