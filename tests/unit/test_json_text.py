"""contract.json_text.parse_json: pydantic-core's parser, answering every input exactly as json.loads did."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.contract.json_text import parse_json


def outcome(parse, value):
    """The value, or the exception's type and message."""
    try:
        return ("value", repr(parse(value)))
    except (ValueError, RecursionError) as exc:
        return (type(exc).__name__, str(exc))


# what pydantic-core refuses and json.loads reads, what both refuse, what both read
INPUTS = [
    b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 byte-order mark
    '{"a": 1}'.encode("utf-16"), '{"a": 1}'.encode("utf-32-le"),
    b'{"a": "\\ud800"}', b'{"a": "\xed\xa0\x80"}',  # a lone surrogate, escaped and encoded
    b"[" * 300 + b"]" * 300,  # deeper than pydantic-core's 200
    b"[" * 100_000,  # deeper than Python's recursion limit
    b'{"a": ' + b"9" * 5000 + b"}",  # an integer longer than Python converts
    b"", b"\xff", b'{"a": "\xff"}', b'{"a": 1} x', b"{'a': 1}", b'{"a": 1,}', b'{"a": NaN}', b'{"a": 1e400}',
    b'{"a": 1, "a": 2}', b'{"a": [1, 2.5, "x", null, true, {"b": -0}]}', '{"é": "😀"}', b' {"a": 1}\n',
]


class TestParseJson:
    @pytest.mark.parametrize("value", INPUTS, ids=range(len(INPUTS)))
    def test_answers_as_json_loads(self, value):
        """Each input gives json.loads's value or json.loads's exception, message included."""
        assert outcome(parse_json, value) == outcome(json.loads, value)

    def test_reads_what_pydantic_core_alone_refuses(self):
        """A byte-order mark, UTF-16 and a lone surrogate are still read (json.loads read them)."""
        assert parse_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
        assert parse_json('{"a": 1}'.encode("utf-16")) == {"a": 1}
        assert parse_json(b'{"a": "\\ud800"}') == {"a": "\ud800"}

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=40) | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()))
    def test_any_bytes_answer_as_json_loads(self, value):
        """Random bytes and random JSON documents: the same answer as json.loads."""
        assert outcome(parse_json, value) == outcome(json.loads, value)
