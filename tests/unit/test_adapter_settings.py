"""The adapters declare what they read of the configuration (`KafkaSettings`, `SmtpSettings`) instead of importing
`runtime.settings`: the runtime's `Settings` must have every field they declare, with the same type."""

from __future__ import annotations

import types
import typing

import pytest

from service.adapters.kafka.config import KafkaSettings
from service.adapters.smtp import SmtpSettings
from service.runtime.settings import Settings


def _plain(hint) -> frozenset:
    """A type as the set of its alternatives, a Literal of strings counted as `str`."""
    alternatives = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    def plain(a):
        literal = typing.get_origin(a) is typing.Literal
        return str if literal and all(isinstance(v, str) for v in typing.get_args(a)) else a

    return frozenset(plain(a) for a in alternatives)


@pytest.mark.parametrize("declared", [KafkaSettings, SmtpSettings], ids=lambda p: p.__name__)
def test_settings_have_every_field_an_adapter_reads_with_its_type(declared):
    """Each field the adapter's protocol names is a field of Settings, of the same type (a Literal of strings
    being a str)."""
    fields = Settings.model_fields
    wanted = typing.get_type_hints(declared)
    assert not sorted(set(wanted) - set(fields)), "Settings lacks fields an adapter reads"
    wrong = {name: (fields[name].annotation, hint) for name, hint in wanted.items()
             if _plain(fields[name].annotation) != _plain(hint)}
    assert not wrong, f"Settings' type differs from what the adapter reads: {wrong}"
