"""When pruning is safe (`service.ops.prune`): what a topic's configuration says about how long it keeps
messages, and the refusal of a retention shorter than that."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.ops.errors import OpsError
from service.ops.prune import TopicKeeps, human, parse_age, refusal, topic_keeps

DAY_MS = 86_400_000


class TestAges:
    @pytest.mark.parametrize("text, seconds", [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400),
                                               ("3600s", 3600), ("2", 2 * 86400), ("1.5d", 1.5 * 86400)])
    def test_units(self, text, seconds):
        """Days, hours, minutes, seconds; a bare number is days."""
        assert parse_age(text) == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", ["", "0d", "-1d", "30 days", "d", "1w"])
    def test_refused(self, text):
        """Anything else, and zero, is refused."""
        with pytest.raises(OpsError):
            parse_age(text)

    def test_human(self):
        """Durations are shown in the largest whole-ish unit."""
        assert [human(s) for s in (2 * 86400, 36 * 3600, 90, 0.5)] == ["2d", "1.5d", "1.5m", "0.5s"]


class TestTopicKeeps:
    def test_retention_plus_one_segment(self):
        """Kafka deletes whole segments: a message can outlive retention.ms by up to segment.ms."""
        keeps = topic_keeps("t", {"retention.ms": str(7 * DAY_MS), "segment.ms": str(DAY_MS)})
        assert keeps.keeps_ms == 8 * DAY_MS and "segment.ms" in keeps.why

    @pytest.mark.parametrize("configs, keeps_ms", [
        ({"retention.ms": "-1"}, -1),
        ({"retention.ms": "1000", "cleanup.policy": "compact"}, -1),
        ({"retention.ms": "1000", "cleanup.policy": "compact,delete"}, 1000),
        ({}, None),
        ({"retention.ms": "soon"}, None),
        (None, None),
    ])
    def test_for_ever_or_unknown(self, configs, keeps_ms):
        """-1 and compaction keep for ever; nothing reported (or no topic) is unknown."""
        assert topic_keeps("t", configs).keeps_ms == keeps_ms


class TestRefusal:
    def test_a_retention_at_least_as_long_as_every_topic_is_safe(self):
        """30 days of records with topics keeping 7 days: no refusal."""
        topics = [TopicKeeps("a", 7 * DAY_MS, ""), TopicKeeps("b", 30 * DAY_MS, "")]
        assert refusal(timedelta(days=30), topics) is None

    @pytest.mark.parametrize("keeps, words", [
        (TopicKeeps("b", 31 * DAY_MS, "retention.ms=…"), "re-apply commands or re-send emails"),
        (TopicKeeps("b", -1, "retention.ms=-1"), "for ever"),
        (TopicKeeps("b", None, "the broker does not report retention.ms"), "--force"),
    ])
    def test_a_topic_keeping_longer_or_unknown_is_refused(self, keeps, words):
        """Longer than the retention, for ever, or unknown: refused, naming the topic and why."""
        reason = refusal(timedelta(days=30), [TopicKeeps("a", DAY_MS, ""), keeps])
        assert reason is not None and reason.startswith("b:") and words in reason
