"""The pure parts of the console's data (issue 21): minute buckets, page cursors, what a dead letter is indexed
as, a heartbeat row's status and the partitions a consumer reports."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from service.adapters.postgres.activity import buckets, minute_starts
from service.adapters.postgres.dead_letter_index import BadCursor, IndexedLetter, decode_cursor, encode_cursor
from service.adapters.postgres.heartbeats import ProcessRow
from service.console.dead_letter_indexer import KEY_BYTES, index_entry
from service.domain.commands import SourceMessage
from service.runtime.consumer import Partition
from service.runtime.heartbeat import assigned

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)


class TestMinuteBuckets:
    def test_minutes_are_consecutive_and_end_with_the_given_one(self):
        """60 minute starts, one minute apart, oldest first, the last being the current minute."""
        minutes = minute_starts(T0)
        assert len(minutes) == 60 and minutes[-1] == T0 and minutes[0] == T0 - timedelta(minutes=59)
        assert all(b - a == timedelta(minutes=1) for a, b in zip(minutes, minutes[1:]))

    def test_rows_land_in_their_minute_and_the_rest_is_zero(self):
        """Counts go to their label's list at their minute's index; minutes without rows are 0."""
        minutes = minute_starts(T0, 3)
        series = buckets(minutes, [(T0, "a", 2), (T0 - timedelta(minutes=2), "a", 1), (T0, "b", 5)])
        assert series == {"a": [1, 0, 2], "b": [0, 0, 5]}

    def test_labels_asked_for_are_present_without_rows_and_rows_outside_the_window_dropped(self):
        """`always` labels appear as zeros; a row from before the first minute is left out; repeats add up."""
        minutes = minute_starts(T0, 2)
        series = buckets(minutes, [(T0 - timedelta(minutes=5), "old", 9), (T0, "x", 1), (T0, "x", 2)], ("sent",))
        assert series == {"sent": [0, 0], "x": [0, 3]}


def letter(**changes) -> IndexedLetter:
    fields = dict(topic="dlq", partition=2, offset=41, written_at=T0, reason="not_json", message="m", command_id=None,
                  order_id=None, original_topic="cmd", original_partition=1, original_offset=7, key=b"k", size=3,
                  truncated=False, redrive_count=0)
    return IndexedLetter(**{**fields, **changes})


class TestCursors:
    def test_a_cursor_reads_back_as_the_position_it_was_made_from(self):
        """encode then decode gives the letter's (written_at, partition, offset)."""
        moment = T0 + timedelta(microseconds=123)
        assert decode_cursor(encode_cursor(letter(written_at=moment))) == (moment, 2, 41)

    @pytest.mark.parametrize("cursor", [
        "", "not-a-cursor", base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(json.dumps(["2026-12-06T09:00:00", 1, 2]).encode()).decode(),  # no time zone
        base64.urlsafe_b64encode(json.dumps(["2026-12-06T09:00:00+00:00", "1", 2]).encode()).decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ])
    def test_anything_else_is_a_bad_cursor(self, cursor):
        """A cursor not made by encode_cursor raises BadCursor (the console answers 400), never another error."""
        with pytest.raises(BadCursor):
            decode_cursor(cursor)


def dlq_record(value: bytes | None, headers=(), **changes) -> SourceMessage:
    fields = dict(topic="dlq", partition=0, offset=5, key=b"1029", value=value, headers=tuple(headers),
                  timestamp_ms=int(T0.timestamp() * 1000))
    return SourceMessage(**{**fields, **changes})


WORKER_HEADERS = [("traceparent", b"00-abc"), ("error.reason", b"validation_failed"),
                  ("error.message", b"status: bad"), ("original.topic", b"cmd"), ("original.partition", b"2"),
                  ("original.offset", b"99")]


class TestIndexEntry:
    def test_the_worker_headers_and_the_command_fields_are_indexed(self):
        """Reason, message, original position, time, size, key, command id and order id come out as written."""
        value = json.dumps({"type": "ChangeOrderStatus", "command_id": "c-1", "order_id": 1029}).encode()
        entry = index_entry(dlq_record(value, WORKER_HEADERS))
        assert (entry.reason, entry.message, entry.original_topic, entry.original_partition, entry.original_offset) \
            == ("validation_failed", "status: bad", "cmd", 2, 99)
        assert (entry.command_id, entry.order_id, entry.size, entry.key, entry.written_at) \
            == ("c-1", 1029, len(value), b"1029", T0)
        assert (entry.topic, entry.partition, entry.offset, entry.truncated, entry.redrive_count) \
            == ("dlq", 0, 5, False, 0)

    def test_the_last_of_a_repeated_header_counts(self):
        """A producer's forged error.reason before the worker's own is not what is indexed."""
        entry = index_entry(dlq_record(b"x", [("error.reason", b"forged"), ("error.reason", b"not_json")]))
        assert entry.reason == "not_json"

    def test_truncation_and_redrive_count_are_read(self):
        """error.truncated: true and redrive.count: 2 are indexed as such."""
        entry = index_entry(dlq_record(b"x", [("redrive.count", b"2"), ("error.truncated", b"true")]))
        assert entry.truncated and entry.redrive_count == 2

    @pytest.mark.parametrize("value, command_id, order_id", [
        (b"not json", None, None),
        (b"[1, 2]", None, None),
        (json.dumps({"command_id": "c", "order_id": "1031"}).encode(), "c", 1031),
        (json.dumps({"command_id": 7, "order_id": True}).encode(), None, None),
        (json.dumps({"command_id": "", "order_id": 2**63}).encode(), None, None),
        (json.dumps({"command_id": "a\u0000b", "order_id": "12a"}).encode(), None, None),
        (json.dumps({"command_id": "x" * 501, "order_id": "\u0661"}).encode(), None, None),
        (None, None, None),
    ])
    def test_ids_are_indexed_only_when_they_are_usable(self, value, command_id, order_id):
        """A command id is a non-empty string without NUL of at most 500 chars; an order id an integer or ASCII
        digits within bigint; anything else is indexed as none."""
        entry = index_entry(dlq_record(value))
        assert (entry.command_id, entry.order_id) == (command_id, order_id)

    def test_text_holds_no_nul_and_is_bounded_and_the_key_is_cut(self):
        """NUL (which Postgres text refuses) is replaced, the reason is cut to 200 chars, the key to KEY_BYTES."""
        entry = index_entry(dlq_record(b"x", [("error.reason", b"a\x00" + b"r" * 300), ("original.offset", b"-1")],
                                       key=b"k" * 1000))
        assert "\x00" not in entry.reason and len(entry.reason) == 200
        assert entry.key == b"k" * KEY_BYTES and entry.original_offset is None

    def test_a_record_without_timestamp_or_readable_bytes_is_still_indexed(self):
        """An unreadable DLQ record (its batch did not decompress) gets reason `unreadable`, and the given
        time when it has no timestamp."""
        entry = index_entry(dlq_record(None, key=None, timestamp_ms=None, unreadable="crc mismatch"),
                            now=T0 + timedelta(hours=1))
        assert (entry.reason, entry.message, entry.size, entry.key) == ("unreadable", "crc mismatch", 0, None)
        assert entry.written_at == T0 + timedelta(hours=1)


def process(seconds_since_beat: float, stopped: bool = False) -> ProcessRow:
    return ProcessRow(process_id="p", kind="worker", host="h", pid=1, version="0.1.0", started_at=T0, beat_at=T0,
                      seconds_since_beat=seconds_since_beat, interval_s=5.0, ready=True, partitions={}, state={},
                      stopped_at=T0 if stopped else None)


class TestProcessStatus:
    @pytest.mark.parametrize("since_beat, stopped, status", [
        (0.0, False, "running"), (15.0, False, "running"), (15.1, False, "stale"), (3600.0, False, "stale"),
        (0.0, True, "stopped"), (3600.0, True, "stopped"),
    ])
    def test_stale_after_three_missed_intervals_and_stopped_wins(self, since_beat, stopped, status):
        """A row is stale once its last beat is older than 3 of its 5 s intervals; a stopped row is stopped."""
        assert process(since_beat, stopped).status == status

    def test_a_consumer_reports_its_partitions_by_topic_sorted(self):
        """The assignment {(t, 2), (t, 0), (u, 1)} is reported as {t: [0, 2], u: [1]}."""

        class Assigned:
            def assignment(self):
                return {Partition("t", 2), Partition("t", 0), Partition("u", 1)}

        assert assigned(Assigned()) == {"t": [0, 2], "u": [1]}
