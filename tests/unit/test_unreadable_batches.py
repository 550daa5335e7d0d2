"""Record batches the Kafka client cannot decompress (`service.adapters.kafka.unreadable`, against the installed
aiokafka's own fetcher and record parsing, on bytes built in memory) and how the worker reads them."""

from __future__ import annotations

import struct

from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from service.adapters.kafka.records import Record
from service.adapters.kafka.unreadable import UnreadableRecord, read_unreadable_batches
from service.contract.commands import InputLimits
from service.domain.commands import SourceMessage
from service.ops.dlq import read_letter
from service.worker.claims import parse
from tests.helpers.commands import change, source_messages

TP = TopicPartition("commands", 0)
ATTRIBUTES_AT = 21  # v2 batch header: base offset 8, length 4, leader epoch 4, magic 1, crc 4, attributes 2


def batch(first_offset: int, values: list[bytes], *, claims_gzip: bool = False) -> bytes:
    """A v2 record batch of uncompressed values; `claims_gzip` marks it gzip-compressed (with a valid CRC), so
    its payload cannot be decompressed."""
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1_048_576)
    for delta, value in enumerate(values):
        builder.append(delta, timestamp=1_700_000_000_000 + delta, key=b"k", value=value, headers=[])
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, first_offset)
    if claims_gzip:
        attributes = struct.unpack_from(">h", data, ATTRIBUTES_AT)[0]
        struct.pack_into(">h", data, ATTRIBUTES_AT, attributes | 1)
        struct.pack_into(">I", data, 17, calc_crc32c(bytes(data[ATTRIBUTES_AT:])))
    return bytes(data)


def records_of(data: bytes, fetch_offset: int = 0) -> list:
    """What a consumer's poll yields for these fetched bytes."""
    return list(fetcher.PartitionRecords(TP, MemoryRecords(data), [], fetch_offset, None, None, True, 0))


class TestAnUnreadableBatch:
    def test_each_offset_of_a_batch_that_does_not_decompress_is_an_unreadable_record_and_the_next_batch_reads(self):
        """A batch claiming gzip that is not gzip yields one UnreadableRecord per offset (why, and which codec),
        and the batch after it in the same fetch is read as usual."""
        read_unreadable_batches()
        fetched = batch(0, [b"a", b"b"]) + batch(2, [b"c", b"d", b"e"], claims_gzip=True) + batch(5, [b"f"])
        records = records_of(fetched)
        assert [r.offset for r in records] == [0, 1, 2, 3, 4, 5]
        assert [r.value for r in records] == [b"a", b"b", None, None, None, b"f"]
        lost = [r for r in records if isinstance(r, UnreadableRecord)]
        assert [r.offset for r in lost] == [2, 3, 4] and all(r.key is None and r.headers == () for r in lost)
        assert "record batch of offsets 2-4, compression gzip" in lost[0].unreadable
        assert not isinstance(records[0], UnreadableRecord)

    def test_a_fetch_from_inside_the_batch_yields_only_the_offsets_from_there(self):
        """Fetched again from an offset inside the unreadable batch, only that offset and later ones come back."""
        read_unreadable_batches()
        records = records_of(batch(2, [b"c", b"d", b"e"], claims_gzip=True), fetch_offset=3)
        assert [r.offset for r in records] == [3, 4]


PRODUCER_ID = 7
CONTROL = 0x20  # attributes: a control batch (a transaction's marker)
READ_COMMITTED = 1


def transactional(first_offset: int, values: list[bytes], *, marker: str | None = None) -> bytes:
    """A batch of a transactional producer, or (`marker` "commit" / "abort") the marker ending its transaction."""
    builder = DefaultRecordBatchBuilder(2, 0, 1, PRODUCER_ID, 0, -1, 1_048_576)
    if marker is None:
        for delta, value in enumerate(values):
            builder.append(delta, timestamp=1_700_000_000_000 + delta, key=b"k", value=value, headers=[])
    else:
        builder.append(0, timestamp=1_700_000_000_000, key=struct.pack(">hh", 0, marker == "commit"),
                       value=struct.pack(">hi", 0, 0), headers=[])
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, first_offset)
    if marker is not None:
        attributes = struct.unpack_from(">h", data, ATTRIBUTES_AT)[0]
        struct.pack_into(">h", data, ATTRIBUTES_AT, attributes | CONTROL)
        struct.pack_into(">I", data, 17, calc_crc32c(bytes(data[ATTRIBUTES_AT:])))
    return bytes(data)


class TestTransactionMarkers:
    def test_committed_records_are_read_and_aborted_ones_and_the_markers_skipped(self):
        """With read_committed, a committed transaction's records come back, an aborted one's do not, the markers
        are no records, and the position passes them all (the hook leaves aiokafka's reading of markers alone)."""
        read_unreadable_batches()
        fetched = (transactional(0, [b"a", b"b"]) + transactional(2, [], marker="commit")
                   + transactional(3, [b"x"]) + transactional(4, [], marker="abort") + batch(5, [b"c"]))
        partition = fetcher.PartitionRecords(TP, MemoryRecords(fetched), [(PRODUCER_ID, 3)], 0, None, None, True,
                                             READ_COMMITTED)
        assert [(r.offset, r.value) for r in partition] == [(0, b"a"), (1, b"b"), (5, b"c")]
        assert partition.next_fetch_offset == 6


class TestTheWorkerReadsIt:
    def test_an_unreadable_message_is_an_invalid_command_with_reason_unreadable(self):
        """The worker never parses a message it could not read: it is dead-lettered as `unreadable`, with why."""
        [readable] = source_messages([change(1033, "Confirmed")])
        lost = SourceMessage("commands", 0, 7, None, None, unreadable="UnsupportedCodecError: snappy")
        assert parse(readable, limits=InputLimits()).command is not None
        parsed = parse(lost, limits=InputLimits())
        assert parsed.command is None and parsed.invalid.reason == "unreadable"
        assert parsed.invalid.message == "UnsupportedCodecError: snappy" and parsed.dedupe_key.startswith("@")



def test_an_unreadable_dead_letter_is_not_redriven():
    """`dlq redrive` refuses an `unreadable` dead letter: it holds none of the original's bytes."""
    record = Record("dlq", 0, 3, 1_700_000_000_000, None, b"", (
        ("error.reason", b"unreadable"), ("error.message", b"UnsupportedCodecError"), ("original.topic", b"commands"),
        ("original.partition", b"0"), ("original.offset", b"7")))
    assert "could not be decompressed" in read_letter(record).unredrivable()
