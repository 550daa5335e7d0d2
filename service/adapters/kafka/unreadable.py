"""Record batches the Kafka client cannot read, as records instead of an exception from every poll.

aiokafka decompresses a fetched record batch while `getmany` iterates it. When it cannot (a codec whose
library is missing here: `UnsupportedCodecError`; a payload that does not decompress; a record that does
not parse) the exception leaves `getmany` naming neither the partition nor the offsets, the records of
other partitions drained in that call are dropped, and the next poll fetches the same batch and fails
again: the consume loop would crash, restart and crash again on it for ever.

`read_unreadable_batches()` (once per process; the consume loop calls it) makes aiokafka's consumers
yield an `UnreadableRecord` for each offset of such a batch from the first record not yet read to the
batch's last offset, which the batch header gives without decompressing: no key, no value, headers
empty, and `unreadable` saying why. The worker dead-letters each one (`error.reason: unreadable`, with
its original topic, partition and offset; the bytes cannot be recovered), the notifier skips it, and
the partition goes on. It reaches into aiokafka's fetcher (`PartitionRecords`), the one private hook
there is: `tests/unit/test_unreadable_batches.py` checks it against the installed version."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.consumer import fetcher
from aiokafka.structs import ConsumerRecord

_CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


@dataclass
class UnreadableRecord(ConsumerRecord):
    """An offset of a record batch the client could not read: key and value None, why in `unreadable`."""

    unreadable: str = ""


@dataclass(frozen=True)
class _Lost:
    offset: int
    timestamp: int
    timestamp_type: int
    reason: str


class _Batch:
    """A record batch whose records are read one by one; on a failure, the rest of its offsets as `_Lost`."""

    def __init__(self, batch) -> None:
        self._batch = batch

    def __getattr__(self, name):
        return getattr(self._batch, name)

    def __iter__(self):
        batch = self._batch
        first = getattr(batch, "base_offset", None)
        try:
            for record in batch:
                first = record.offset + 1
                yield record
        except Exception as exc:
            if first is None:  # a legacy (v0/v1) batch: no header to say which offsets it holds
                raise
            codec = _CODECS.get(getattr(batch, "compression_type", -1), "unknown")
            error = str(exc) if str(exc).startswith(type(exc).__name__) else f"{type(exc).__name__}: {exc}"
            reason = (f"{error} (record batch of offsets {batch.base_offset}-{batch.next_offset - 1}, "
                      f"compression {codec})")[:1000]
            for offset in range(first, batch.next_offset):
                yield _Lost(offset, batch.first_timestamp, batch.timestamp_type, reason)


class _Records:
    def __init__(self, records) -> None:
        self._records = records

    def has_next(self) -> bool:
        return self._records.has_next()

    def next_batch(self):
        batch = self._records.next_batch()
        if batch is None or getattr(batch, "is_control_batch", False):
            # a transaction's marker: aiokafka reads it with next() (commit or abort?) and yields no record of it
            return batch
        return _Batch(batch)


class _ReadablePartitionRecords(fetcher.PartitionRecords):
    def __init__(self, tp, records, *args, **kwargs) -> None:
        super().__init__(tp, _Records(records), *args, **kwargs)

    def _consumer_record(self, tp, record):
        if isinstance(record, _Lost):
            return UnreadableRecord(tp.topic, tp.partition, record.offset, record.timestamp, record.timestamp_type,
                                    None, None, None, -1, -1, (), unreadable=record.reason)
        return super()._consumer_record(tp, record)


def read_unreadable_batches() -> None:
    """From now on every aiokafka consumer of this process yields `UnreadableRecord`s for a batch it cannot
    read, instead of raising from `getmany` (idempotent)."""
    fetcher.PartitionRecords = _ReadablePartitionRecords
