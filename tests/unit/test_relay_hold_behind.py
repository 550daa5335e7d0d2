"""The outbox's ordering rule as pure logic (`service.domain.outbox`): a refused row holds back the later
rows of its line — its shard, topic and key — and nothing else."""

from __future__ import annotations

import pytest

from service.domain.outbox import HeldLines, StoredMessage, held_back, line_of

PARKED = StoredMessage(3, "events", b"7", b"", [], shard=1)


def row(row_id: int, key: bytes | None = b"7", topic: str = "events", shard: int = 1) -> StoredMessage:
    return StoredMessage(row_id, topic, key, b"", [], shard=shard)


class TestWhatARefusedRowHoldsBack:
    @pytest.mark.parametrize(("later", "held"), [
        (row(10), True),  # same shard, topic and key
        (row(11, key=b"8"), False),  # another key
        (row(12, topic="dlq"), False),  # another topic
        (row(13, shard=2), False),  # another shard
        (row(14, key=None), False),  # no key: in no line
    ])
    def test_only_the_rows_of_its_line_are_held_behind_it(self, later, held):
        """held_back holds a row behind the parked row of its shard, topic and key, no other row."""
        assert held_back([later], [PARKED]) == ({later.id: PARKED.id} if held else {})

    def test_a_row_without_a_key_holds_nothing_back(self):
        """A refused row without a key is in no line: a later row without a key is not held behind it."""
        assert held_back([row(10, key=None)], [row(3, key=None)]) == {}
        assert line_of(row(3, key=None)) is None

    def test_the_first_refused_row_of_a_line_is_its_head(self):
        """Several refused rows of one line: the later rows wait behind the lowest id, whatever the order given."""
        assert held_back([row(10)], [row(5), row(3)]) == {10: 3}
        lines = HeldLines()
        lines.refuse(row(5))
        lines.refuse(row(8))
        assert lines.behind(row(9)) == 5

    def test_nothing_refused_holds_nothing_back(self):
        """No refusal: every row may go."""
        assert HeldLines().behind(row(1)) is None
        assert held_back([row(1), row(2, key=None)], []) == {}
