"""Asking a running Kafka cluster who leads what: partition leaders and in-sync replicas, and the active
KRaft controller (the leader of the metadata quorum, from a DescribeQuorum request)."""

from __future__ import annotations

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import CompactArray, CompactString, Int16, Int32, Int64, Schema, TaggedFields

from service.adapters.kafka.clients import make_admin
from service.runtime.settings import Settings
from tests.helpers.waiting import wait_until

OFFSETS_TOPIC = "__consumer_offsets"
METADATA_TOPIC = "__cluster_metadata"

_REPLICA = (("replica_id", Int32), ("log_end_offset", Int64), ("tags", TaggedFields))


class DescribeQuorumResponse_v0(Response):
    API_KEY = 55
    API_VERSION = 0
    SCHEMA = Schema(
        ("error_code", Int16),
        ("topics", CompactArray(
            ("topic_name", CompactString("utf-8")),
            ("partitions", CompactArray(
                ("partition_index", Int32),
                ("error_code", Int16),
                ("leader_id", Int32),
                ("leader_epoch", Int32),
                ("high_watermark", Int64),
                ("current_voters", CompactArray(*_REPLICA)),
                ("observers", CompactArray(*_REPLICA)),
                ("tags", TaggedFields),
            )),
            ("tags", TaggedFields),
        )),
        ("tags", TaggedFields),
    )


class DescribeQuorumRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 55
    API_VERSION = 0
    RESPONSE_TYPE = DescribeQuorumResponse_v0
    SCHEMA = Schema(
        ("topics", CompactArray(
            ("topic_name", CompactString("utf-8")),
            ("partitions", CompactArray(("partition_index", Int32), ("tags", TaggedFields))),
            ("tags", TaggedFields),
        )),
        ("tags", TaggedFields),
    )


class DescribeQuorumRequest(Request[DescribeQuorumRequest_v0]):
    """KIP-595's DescribeQuorum of the metadata log: a broker forwards it to the active controller. (A
    Metadata or DescribeCluster answer from a KRaft broker names a random live broker as "controller".)"""

    API_KEY = 55

    def build(self, request_struct_class: type[DescribeQuorumRequest_v0]) -> DescribeQuorumRequest_v0:
        return request_struct_class([(METADATA_TOPIC, [(0, {})], {})], {})


async def active_controller(bootstrap_servers: str) -> int:
    """The node id of the active KRaft controller: the leader of the metadata quorum."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    try:
        await client.bootstrap()
        node = client.get_random_node()
        response = await client.send(node, DescribeQuorumRequest())
    finally:
        await client.close()
    assert response.error_code == 0, f"DescribeQuorum failed: error {response.error_code}"
    partition = response.topics[0][1][0]
    error_code, leader_id = partition[1], partition[2]
    assert error_code == 0 and leader_id >= 0, f"the metadata quorum has no leader (error {error_code})"
    return leader_id


async def wait_active_controller(bootstrap_servers: str, timeout: float = 60) -> int:
    """`active_controller`, asked again while the quorum is between leaders or a broker is starting."""

    async def probe():
        try:
            return await active_controller(bootstrap_servers)
        except Exception:
            return None

    return await wait_until(probe, timeout, "the metadata quorum to name its leader", interval=0.5)


async def partition_states(settings: Settings, topics: list[str]) -> dict[tuple[str, int], tuple[int, list[int]]]:
    """(topic, partition) -> (leader node id, in-sync replica ids) as the cluster describes them now."""
    admin = make_admin(settings)
    states: dict[tuple[str, int], tuple[int, list[int]]] = {}
    try:
        await admin.start()
        for entry in await admin.describe_topics(topics):
            for p in entry["partitions"]:
                states[(entry["topic"], p["partition"])] = (p["leader"], sorted(p["isr"]))
    finally:
        await admin.close()
    return states


async def wait_fully_replicated(settings: Settings, topics: list[str], replicas: int = 3,
                                timeout: float = 120) -> None:
    """Until every partition of the topics has a leader and all `replicas` replicas in sync (after a
    restart the node catches up before it is back in the ISR)."""

    async def probe():
        try:
            states = await partition_states(settings, topics)
        except Exception:  # a node in the middle of starting may answer badly: ask again
            return False
        return states and all(leader >= 0 and len(isr) == replicas for leader, isr in states.values())

    await wait_until(probe, timeout, f"{', '.join(topics)} fully replicated", interval=0.5)
