"""contract.durations.parse_duration: the one reading of a typed duration (prune, topics, tokens)."""

from __future__ import annotations

from datetime import timedelta

import click
import pytest

from service.contract.durations import parse_duration
from service.entrypoints.cli.tokens import parse_ttl
from service.ops.errors import OpsError
from service.ops.prune import parse_age

READ = [
    # what `tokens issue --ttl` read before
    ("30m", 1800), ("1h", 3600), ("7d", 7 * 86400), ("45s", 45), (" 2h ", 7200),
    # what `prune --older-than` read before besides: a fraction, spaces, a bare number (days)
    ("1.5d", 1.5 * 86400), ("12 h", 43200), ("2", 2 * 86400), ("0.5", 43200), ("3600s", 3600),
]
REFUSED = ["", "0d", "0", "0.0h", "-1d", "30 days", "d", "1w", "1h30m", "h1", "1e3s", "1.d", ".5d"]


class TestParseDuration:
    @pytest.mark.parametrize("text, seconds", READ)
    def test_forms(self, text, seconds):
        """Days, hours, minutes and seconds, whole or fractional, spaces around; a bare number is days."""
        assert parse_duration(text) == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", REFUSED)
    def test_refused(self, text):
        """Zero, negatives, other units and words are a ValueError naming the text."""
        with pytest.raises(ValueError, match="positive duration"):
            parse_duration(text)

    @pytest.mark.parametrize("text, seconds", READ)
    def test_commands_read_alike(self, text, seconds):
        """prune's age and the token TTL read every form the same way."""
        assert parse_age(text) == parse_ttl(text) == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", ["0d", "1w", "-1h"])
    def test_commands_keep_their_messages(self, text):
        """A refusal is each command's own error: OpsError for prune, a one-line UserError for --ttl."""
        with pytest.raises(OpsError, match="not an age like"):
            parse_age(text)
        with pytest.raises(click.ClickException, match="--ttl wants a positive duration"):
            parse_ttl(text)
