"""No input can make a parser raise, and no output can outgrow the broker's limit (the hostile-input issue)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.contract.commands import InputLimits, parse_command
from service.contract.events import (
    RECORD_OVERHEAD,
    MessageTooLarge,
    Topics,
    Unparseable,
    dead_letter,
    parse_status_changed,
    to_wire,
)
from service.domain.commands import ChangeOrderStatus, InvalidCommand, OverrideOrderStatuses, SourceMessage
from service.domain.events import DeadLetter, StatusChanged
from service.domain.model import Actor, Note, StatusLabel
from service.worker.config import BatchConfig
from service.worker.poison import process_isolating_poison
from service.worker.handlers import Context, handle_override_order_statuses
from tests.helpers.commands import change, override, source_messages
from tests.helpers.database import SAMPLE_RULES
from tests.helpers.fakes import FakeDatabase, FakeUnitOfWork

MIB = 1_048_576
TOPICS = Topics(events="events", dlq="dlq", max_message_bytes=MIB)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
# commands with every field present but any value in it: the validation paths, not only the JSON ones
command_shaped = st.fixed_dictionaries(
    {"type": st.sampled_from(["ChangeOrderStatus", "OverrideOrderStatuses"]) | json_values},
    optional={name: json_values for name in ("command_id", "order_id", "status", "expected_status", "actor", "note",
                                             "notify", "items", "correlation_id", "issued_at")},
)


def _bytes(data) -> bytes:
    return json.dumps(data).encode()


class TestCommandParserIsTotal:
    @given(st.binary(max_size=2000) | st.none())
    @settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
    def test_any_bytes_give_a_command_or_an_invalid_outcome(self, value):
        """Whatever the bytes, parse_command returns a command or an InvalidCommand; it never raises."""
        assert isinstance(parse_command(value), (ChangeOrderStatus, OverrideOrderStatuses, InvalidCommand))

    @given(command_shaped)
    @settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
    def test_any_command_shaped_json_gives_a_command_or_an_invalid_outcome(self, data):
        """JSON objects shaped like commands, with any value in any field, never make the parser raise,
        and what an invalid one echoes is short (no field of the input is repeated whole)."""
        parsed = parse_command(_bytes(data))
        assert isinstance(parsed, (ChangeOrderStatus, OverrideOrderStatuses, InvalidCommand))
        if isinstance(parsed, InvalidCommand):
            assert len(parsed.message) <= 1000
            assert parsed.command_id is None or len(parsed.command_id) <= 200


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"type": "ChangeOrderStatus", "order_id": ' + b"9" * 5000 + b"}", "not_json"),
        (b"[" * 200_000, "not_json"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "not_json"),
        (b"x" * (MIB + 1), "too_large"),
    ],
    ids=["5000-digit integer", "deep array", "deep object", "over the size limit"],
)
def test_hostile_json_is_an_invalid_outcome_not_an_exception(value, reason):
    """Huge integers, deep nesting and oversized values are invalid messages with a clear reason."""
    parsed = parse_command(value)
    assert isinstance(parsed, InvalidCommand) and parsed.reason == reason


class TestBoundedInput:
    def test_more_override_items_than_the_wire_cap_are_invalid_before_validation(self):
        """Items beyond the wire cap make the command invalid_command, with the count in the message."""
        parsed = parse_command(_bytes(override([(1, "OnHold")] * 1001)), InputLimits(max_wire_items=1000))
        assert isinstance(parsed, InvalidCommand) and "1001 items" in parsed.message

    def test_a_batch_over_the_business_limit_but_under_the_wire_cap_still_parses(self):
        """51..1000 items parse, so the handler can answer batch_too_large (R12)."""
        assert isinstance(parse_command(_bytes(override([(1, "OnHold")] * 51))), OverrideOrderStatuses)

    @pytest.mark.parametrize("field", ["notify"])
    @pytest.mark.parametrize("value", ["yes", 1, "true", None])
    def test_booleans_are_strict(self, field, value):
        """`notify: "yes"` (or 1) is not a boolean."""
        assert isinstance(parse_command(_bytes(change(1, 2, **{field: value}))), InvalidCommand)

    @pytest.mark.parametrize("value", ["yes", 1, "true"])
    def test_note_is_public_is_strict(self, value):
        """`note.is_public: "yes"` is not a boolean."""
        assert isinstance(parse_command(_bytes(change(1, 2, note={"is_public": value}))), InvalidCommand)

    @pytest.mark.parametrize("status", [2**31, -(2**31) - 1, 2**63])
    def test_status_ids_must_fit_the_column(self, status):
        """A status id beyond Postgres integer is invalid (it could never exist)."""
        assert isinstance(parse_command(_bytes(change(1, status))), InvalidCommand)

    def test_a_command_id_cannot_take_an_internal_dedupe_key(self):
        """`@topic:partition:offset` keys belong to unreadable messages: a command may not claim one, and
        its rejection does not echo it."""
        parsed = parse_command(_bytes(change(1, 2, command_id="@order-status.commands:0:17")))
        assert isinstance(parsed, InvalidCommand) and parsed.command_id is None

    def test_long_fields_are_not_echoed_in_the_rejection(self):
        """An invalid command's long status, actor id or correlation id is not repeated in its rejection."""
        parsed = parse_command(_bytes(change(1, "S" * 500_000, role="admin", correlation_id="c" * 10_000)))
        assert isinstance(parsed, InvalidCommand)
        assert parsed.requested_status is None and parsed.correlation_id is None and parsed.command_id


class TestEventParserIsTotal:
    @given(st.binary(max_size=2000) | st.none())
    @settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
    def test_any_bytes_give_an_event_none_or_unparseable(self, value):
        """The notifier's parser answers an event, None (not for it) or Unparseable, never anything else."""
        try:
            assert parse_status_changed(value) is None or isinstance(parse_status_changed(value), StatusChanged)
        except Unparseable:
            pass

    @given(st.dictionaries(st.sampled_from(["type", "event_id", "order_id", "version", "note", "actor",
                                            "from_status", "to_status", "occurred_at", "notify"]),
                           json_values).map(lambda d: {**d, "type": "OrderStatusChanged"}))
    @settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
    def test_any_event_shaped_json_gives_an_event_or_unparseable(self, data):
        """OrderStatusChanged objects with any value in any field never make the parser raise otherwise."""
        try:
            assert isinstance(parse_status_changed(_bytes(data)), StatusChanged)
        except Unparseable:
            pass

    @pytest.mark.parametrize("order_id", ["0", "-1", str(2**63), "9" * 5000], ids=["0", "-1", "2^63", "5000 digits"])
    def test_an_order_id_beyond_bigint_is_unparseable(self, order_id):
        """An event whose order id no order can have (or an integer Python refuses to read) is Unparseable."""
        good = to_wire(_status_changed(), TOPICS).value
        hostile = good.replace(b'"order_id":1029', b'"order_id":' + order_id.encode())
        assert hostile != good
        with pytest.raises(Unparseable):
            parse_status_changed(hostile)

    def test_an_event_over_the_size_limit_is_unparseable(self):
        """An event larger than the limit is not even decoded."""
        with pytest.raises(Unparseable):
            parse_status_changed(b" " * (MIB + 1), max_bytes=MIB)


def _status_changed(note: str = "n") -> StatusChanged:
    return StatusChanged(
        event_id=uuid.uuid4(), command_id="c", order_id=1029, order_type="SO", version=1,
        from_status=StatusLabel(2, "Confirmed", "Confirmed"), to_status=StatusLabel(3, "OnHold", "On hold"),
        override=False, notify=True, actor=Actor("u", "staff"), note=Note(note), removed_reservations=(),
        removed_coupons=(), occurred_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )


def _source(value: bytes | None, headers=(), key: bytes | None = b"k") -> SourceMessage:
    return SourceMessage("commands", 2, 41, key, value, tuple(headers))


class TestBoundedOutput:
    def test_a_dead_letter_keeps_null_and_binary_header_values(self):
        """Null and non-UTF-8 header values travel to the DLQ copy as they came."""
        letter = dead_letter(DeadLetter(_source(b"{", [("a", None), ("b", b"\xff\x00")]), "not_json", "x"), "dlq", MIB)
        assert ("a", None) in letter.headers and ("b", b"\xff\x00") in letter.headers

    def test_forged_error_and_original_headers_are_dropped(self):
        """A producer cannot pre-set the DLQ's own headers: incoming error.* / original.* are dropped."""
        forged = [("error.reason", b"forged"), ("original.offset", b"999"), ("trace", b"t")]
        headers = dead_letter(DeadLetter(_source(b"{", forged), "not_json", "x"), "dlq", MIB).headers
        assert [v for n, v in headers if n == "error.reason"] == [b"not_json"]
        assert [v for n, v in headers if n == "original.offset"] == [b"41"]
        assert ("trace", b"t") in headers

    def test_null_key_and_value_make_a_dead_letter(self):
        """A tombstone (no key, no value) dead-letters as an empty copy, not an exception."""
        letter = dead_letter(DeadLetter(_source(None, key=None), "not_json", "no value"), "dlq", MIB)
        assert letter.key is None and letter.value == b""

    def test_an_original_that_cannot_fit_keeps_its_first_bytes_and_says_so(self):
        """A near-limit original is cut to fit with error.truncated and original.size (DESIGN §11)."""
        value = bytes(range(256)) * (MIB // 256)
        letter = dead_letter(DeadLetter(_source(value, [("h", b"v" * 1000)]), "not_json", "x" * 5000), "dlq", MIB)
        headers = dict(letter.headers)
        assert headers["error.truncated"] == b"true" and headers["original.size"] == str(len(value)).encode()
        assert letter.size + RECORD_OVERHEAD <= MIB and value.startswith(letter.value) and len(letter.value) > MIB // 2

    def test_huge_original_headers_are_dropped_before_the_value_is_cut(self):
        """Original headers beyond their share of the limit are dropped; ours always stay."""
        letter = dead_letter(DeadLetter(_source(b"{}", [("big", b"x" * MIB)]), "not_json", "x"), "dlq", MIB)
        assert "big" not in dict(letter.headers) and dict(letter.headers)["error.reason"] == b"not_json"
        assert letter.value == b"{}"

    def test_an_event_over_the_limit_is_refused_when_it_enters_the_outbox(self):
        """An event larger than the topic takes raises MessageTooLarge instead of reaching the relay."""
        small = Topics(events="events", dlq="dlq", max_message_bytes=4096)
        with pytest.raises(MessageTooLarge):
            to_wire(_status_changed(note="n" * 5000), small)

    def test_batch_too_large_answers_with_the_count_not_a_result_per_item(self):
        """An override of 1000 items over a limit of 50: one rejection and a summary without per-item results."""
        db = FakeDatabase.seeded()
        parsed = parse_command(_bytes(override([(1029, "OnHold")] * 1000)))
        ctx = Context(rules=db.rules, orders={}, now=datetime.now(timezone.utc), max_batch_items=50)
        outcome = handle_override_order_statuses(parsed, ctx)
        wire = [to_wire(e, TOPICS) for e in outcome.emitted]
        rejection, summary = (json.loads(m.value) for m in wire)
        assert rejection["reason"] == "batch_too_large" and "1000" in rejection["message"]
        assert summary["results"] == [] and summary["item_count"] == 1000 and summary["reason"] == "batch_too_large"
        assert all(len(m.value) < 2000 for m in wire)


class NoDeadLetters(FakeUnitOfWork):
    """A unit of work that cannot store a DLQ copy: the last resort itself fails."""

    def add(self, command_id, outcome, changes, messages):
        if any(m.topic == "dlq" for m in messages):
            raise ValueError("simulated: the DLQ copy cannot be stored")
        super().add(command_id, outcome, changes, messages)


class TestDeadLetterPathCannotCrashLoop:
    async def test_a_message_whose_dead_letter_fails_is_recorded_as_skipped(self):
        """If even the DLQ copy cannot be written, the message is recorded as skipped and counted; the
        rest of the batch applies and nothing raises."""
        db = FakeDatabase.seeded()
        db.refuse_changes_to(1033)

        sources = source_messages([change(1033, "Confirmed"), change(3001, "QuoteAccepted", role="manager")])
        result = await process_isolating_poison(sources, lambda: NoDeadLetters(db), BatchConfig(TOPICS, 50))
        assert result.skipped == 1 and [o.outcome for o in result.outcomes] == ["applied"]
        assert db.processed["@commands:0:0"].outcome == "skipped"
        assert db.orders[3001].version == 1 and db.orders[1033].version == 0

    async def test_a_redelivered_skipped_message_changes_nothing(self):
        """The skip is recorded, so the same message redelivered is a duplicate, not a second attempt."""
        db = FakeDatabase.seeded()
        db.refuse_changes_to(1033)

        sources = source_messages([change(1033, "Confirmed")])
        first = await process_isolating_poison(sources, lambda: NoDeadLetters(db), BatchConfig(TOPICS, 50))
        again = await process_isolating_poison(sources, lambda: NoDeadLetters(db), BatchConfig(TOPICS, 50))
        assert first.skipped == 1
        assert (again.outcomes, again.duplicates, again.skipped) == ([], 1, 0) and db.orders[1033].version == 0


def test_sample_rules_exist():
    """The fixtures above read the sample rules shipped in devkit (a moved file would fail here first)."""
    assert SAMPLE_RULES.exists()


class TestEventBytes:
    @pytest.mark.parametrize("make", [
        lambda: _status_changed("a note"),
        lambda: _status_changed("é ✓ \\u2028 \"quoted\""),
    ])
    def test_the_fast_event_bytes_are_what_the_model_would_write(self, make):
        """Events are built without constructing a model; the bytes equal the model's own dump of them."""
        from service.contract.events import EVENT_ADAPTER

        wire = to_wire(make(), TOPICS).value
        assert EVENT_ADAPTER.validate_json(wire).model_dump_json().encode() == wire

    def test_rejections_and_summaries_too(self):
        """Rejections (with a partial actor or none) and batch summaries match their models byte for byte."""
        from service.contract.events import EVENT_ADAPTER
        from service.domain.commands import PartialActor
        from service.domain.events import ChangeRejected, OverrideCompleted, OverrideResult

        now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
        events = [
            ChangeRejected(uuid.uuid4(), "c", 7, "OnHold", "no_change", "m", Actor("a", "staff"), now),
            ChangeRejected(uuid.uuid4(), "c", None, None, "invalid_command", "m", PartialActor(id="x"), now, "corr"),
            ChangeRejected(uuid.uuid4(), "c", None, 21, "invalid_command", "m", None, now),
            OverrideCompleted(uuid.uuid4(), "c", (OverrideResult(1, "OnHold", True),
                                                   OverrideResult(2, 21, False, "order_not_found", "gone")), 2, now),
            OverrideCompleted(uuid.uuid4(), "c", (), 51, now, reason="batch_too_large"),
        ]
        for event in events:
            wire = to_wire(event, TOPICS).value
            assert EVENT_ADAPTER.validate_json(wire).model_dump_json().encode() == wire
