"""The operator side of dead letters (`service.ops.dlq`) without a broker: what a DLQ record's headers say,
safe printing, positions, selection, and what a redrive sends (a fake topic reader and the fake producer)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from service.adapters.kafka.records import Record
from service.contract.redrive import read_redrive
from service.ops import dlq
from service.ops.errors import OpsError
from tests.helpers.fakes import FakeProducer

T0 = int(datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc).timestamp() * 1000)


def letter_record(offset: int, *, reason=b"processing_failed", value=b'{"command_id": "c-1"}', partition=0,
                  extra=(), at=T0, truncated=False) -> Record:
    headers = [("actor-token", b"jwt"), *extra, ("error.reason", reason), ("error.message", b"boom"),
               ("original.topic", b"commands"), ("original.partition", b"2"), ("original.offset", b"41")]
    if truncated:
        headers += [("error.truncated", b"true"), ("original.size", b"9999999")]
    return Record("dlq", partition, offset, at + offset, b"1033", value, tuple(headers))


class FakeRecords:
    """The slice of `TopicRecords` the ops use, over a list of records."""

    topic = "dlq"

    def __init__(self, records: list[Record]) -> None:
        self.records = records

    def partitions(self) -> list[int]:
        return sorted({r.partition for r in self.records}) or [0]

    async def bounds(self, partitions):
        return {p: (0, 1 + max([r.offset for r in self.records if r.partition == p], default=-1)) for p in partitions}

    async def first_at_or_after(self, partitions, stamp_ms):
        return {p: min([r.offset for r in self.records if r.partition == p and r.timestamp_ms >= stamp_ms],
                       default=None) for p in partitions}

    async def read(self, partition, start, end):
        for r in sorted(self.records, key=lambda r: r.offset):
            if r.partition == partition and start <= r.offset < end:
                yield r

    async def get(self, partition, offset):
        return next((r for r in self.records if (r.partition, r.offset) == (partition, offset)), None)


async def collect(agen) -> list:
    return [x async for x in agen]


class TestReadingALetter:
    def test_the_headers_say_why_and_where_from(self):
        """Reason, original position, readable command id, size and redrive count come from the record."""
        letter = dlq.read_letter(letter_record(7, extra=[("redrive.count", b"2")]))
        assert (letter.reason, letter.original_position, letter.command_id) == ("processing_failed", "commands:2:41",
                                                                                 "c-1")
        assert (letter.position, letter.size, letter.redrive_count, letter.truncated) == ("0:7", 21, 2, False)
        line = dlq.summary_line(letter).split("\t")
        assert line[0] == "0:7" and line[2:] == ["processing_failed", "commands:2:41", "c-1", "21 bytes",
                                                 "redriven 2x"]

    def test_every_line_has_the_header_columns_and_counts_read_as_english(self):
        """`dlq list`'s header names each column of every line (one NOTES column); "1 dead letter", "2 dead letters"."""
        header = dlq.SUMMARY_HEADER.split("\t")
        for extra in ([], [("redrive.count", b"2")], [("redrive.count", b"1"), ("error.truncated", b"true")]):
            assert len(dlq.summary_line(dlq.read_letter(letter_record(7, extra=extra))).split("\t")) == len(header)
        assert header == ["POSITION", "WRITTEN", "REASON", "ORIGINAL", "COMMAND_ID", "SIZE", "NOTES"]
        assert [dlq.plural(n, "dead letter") for n in (0, 1, 2)] == ["0 dead letters", "1 dead letter",
                                                                     "2 dead letters"]

    def test_a_value_that_is_no_command_has_no_command_id(self):
        """Garbage, JSON that is no object, or a command id that is no string: shown as -."""
        for value in (b"\xfe\xff", b"[1]", b'{"command_id": 5}', None):
            assert dlq.read_letter(letter_record(1, value=value)).command_id is None

    def test_truncated_or_foreign_records_cannot_be_redriven(self):
        """A cut copy lost its original bytes; a record without original.topic is not a dead letter of ours."""
        assert "lost" in dlq.read_letter(letter_record(1, truncated=True)).unredrivable()
        foreign = Record("dlq", 0, 1, T0, None, b"x", ())
        assert "original.topic" in dlq.read_letter(foreign).unredrivable()
        assert dlq.read_letter(letter_record(1)).unredrivable() is None


class TestPrintable:
    @pytest.mark.parametrize("raw, shown", [
        (b"plain text", "plain text"),
        (b"\x1b[31mred", "\\x1b[31mred"),
        (b"a\x00b\xfe", "a\\x00b\\xfe"),
        (b"line\nbreak\ttab", "line\\nbreak\\ttab"),
        (b"back\\slash", "back\\\\slash"),
        ("caf\u00e9 \u202e".encode(), "caf\u00e9 \\u202e"),
    ])
    def test_non_printable_bytes_are_escaped(self, raw, shown):
        """Control characters, invalid UTF-8 and bidi overrides are escaped; printable UTF-8 stays."""
        assert dlq.printable(raw, 100) == shown

    def test_a_long_value_is_cut_with_a_note(self):
        """Only `limit` bytes are shown, followed by how many were left out."""
        assert dlq.printable(b"x" * 50, 10) == "x" * 10 + " ... [40 more bytes not shown]"

    def test_show_renders_every_header_on_its_own_line(self):
        """`dlq show` lists position, headers (null ones as such), key and value."""
        record = letter_record(3, extra=[("empty", None)])
        lines = dlq.render(dlq.read_letter(record), 1000)
        assert lines[0] == "position: dlq:0:3"
        assert "  empty: (null)" in lines and "  error.reason: processing_failed" in lines
        assert lines[-2:] == ["key: 1033", 'value: {"command_id": "c-1"}']


class TestPositions:
    def test_partition_and_offset(self):
        """PARTITION:OFFSET always; a bare OFFSET only when the DLQ has one partition."""
        assert dlq.parse_position("2:15", [0, 1, 2]) == (2, 15)
        assert dlq.parse_position("15", [0]) == (0, 15)
        with pytest.raises(OpsError, match="3 partitions"):
            dlq.parse_position("15", [0, 1, 2])
        for bad in ("3:1", "x", "1:-1", "1:2:3"):
            with pytest.raises(OpsError):
                dlq.parse_position(bad, [0, 1, 2])


class TestSelection:
    async def test_filters_by_time_and_reason_and_limit(self):
        """--since/--until bound the scan by time; --reason matches error.reason; --limit stops early."""
        records = [letter_record(i, reason=b"not_json" if i % 2 else b"processing_failed") for i in range(6)]
        reader = FakeRecords(records)
        since = datetime.fromtimestamp((T0 + 1) / 1000, timezone.utc)
        until = datetime.fromtimestamp((T0 + 4) / 1000, timezone.utc)
        found = await collect(dlq.letters(reader, dlq.Selection(since=since, until=until)))
        assert [f.record.offset for f in found] == [1, 2, 3, 4]
        found = await collect(dlq.letters(reader, dlq.Selection(reason="not_json", limit=2)))
        assert [f.record.offset for f in found] == [1, 3]

    async def test_a_missing_position_is_an_error_before_anything_is_sent(self):
        """An explicit position that holds nothing (or no longer) is refused, not skipped, and refuses the
        whole redrive: nothing is sent for the positions named before it."""
        with pytest.raises(OpsError, match="no dead letter at dlq:0:9"):
            await collect(dlq.letters(FakeRecords([letter_record(0)]), dlq.Selection(positions=((0, 9),))))
        producer = FakeProducer()
        with pytest.raises(OpsError):
            await collect(dlq.redrive(FakeRecords([letter_record(0)]), producer,
                                      dlq.Selection(positions=((0, 0), (0, 9)))))
        assert producer.sent == []


class TestRedrive:
    async def test_sends_key_value_and_the_original_headers_with_the_count(self):
        """Each letter goes to original.topic with its key and value, the original's headers and redrive.*;
        a cut copy is skipped, and a dry run sends nothing."""
        records = [letter_record(0, extra=[("redrive.count", b"1"), ("redrive.dlq-offset", b"99")]),
                   letter_record(1, truncated=True), letter_record(2)]
        producer = FakeProducer()
        dry = await collect(dlq.redrive(FakeRecords(records), producer, dlq.Selection(), dry_run=True))
        assert producer.sent == [] and [type(r).__name__ for r in dry] == ["Redriven", "Skipped", "Redriven"]

        results = await collect(dlq.redrive(FakeRecords(records), producer, dlq.Selection()))
        assert [(r.letter.position, r.topic, r.offset, r.count) for r in results if isinstance(r, dlq.Redriven)] == [
            ("0:0", "commands", 0, 2), ("0:2", "commands", 1, 1)]
        first = producer.sent[0]
        assert (first.topic, first.key, first.value) == ("commands", b"1033", records[0].value)
        assert first.headers == (("actor-token", b"jwt"), ("redrive.count", b"2"), ("redrive.dlq-offset", b"0"),
                                 ("redrive.dlq-partition", b"0"))
        assert read_redrive(producer.sent[1].headers).count == 1

    async def test_a_rate_spaces_the_sends(self):
        """--rate N/s: N+1 sends take at least one second."""
        import time

        records = [letter_record(i) for i in range(6)]
        started = time.monotonic()
        results = await collect(dlq.redrive(FakeRecords(records), FakeProducer(), dlq.Selection(), rate=5))
        assert len(results) == 6 and time.monotonic() - started >= 1.0
