"""The audit's result of a confirmed redrive (service/console/app.redrive_result): a redrive that stopped on a
failure is never recorded as "ok"."""

from __future__ import annotations

from service.console.app import redrive_result


def sent(position: str) -> dict:
    return {"position": position, "outcome": "redriven", "why": None, "target": "cmd:0:7", "count": 1}


def skipped(position: str) -> dict:
    return {"position": position, "outcome": "skipped", "why": "truncated", "target": None, "count": 0}


def failed(why: str) -> dict:
    return {"position": "-", "outcome": "failed", "why": why, "target": None, "count": 0}


class TestRedriveResult:
    def test_every_letter_sent_or_skipped_is_ok_or_names_the_skipped(self):
        """No failure: "ok", or how many were skipped."""
        assert redrive_result([sent("0:1"), sent("0:2")]) == "ok"
        assert redrive_result([sent("0:1"), skipped("0:2")]) == "1 skipped"

    def test_a_failure_before_any_send_is_failed_with_its_reason_on_one_line(self):
        """The broker refused or was away at once: "failed: <why>", the why's lines joined and cut."""
        assert redrive_result([failed("Kafka refused user 'console'\n  access to topic cmd")]) == \
            "failed: Kafka refused user 'console' access to topic cmd"
        assert len(redrive_result([failed("x" * 5000)])) == len("failed: ") + 300

    def test_a_failure_after_some_sends_is_partial_with_the_count(self):
        """Letters acknowledged before the failure are counted; skipped ones are named too."""
        results = [sent("0:1"), sent("0:2"), skipped("0:3"), failed("Kafka unavailable (KafkaTimeoutError: )")]
        assert redrive_result(results) == ("partial: 2 sent, then failed: Kafka unavailable (KafkaTimeoutError: ) "
                                           "(1 skipped)")
