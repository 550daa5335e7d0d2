"""Failures an adapter reports when a dependency cannot do its part right now (not the message's fault)."""

from __future__ import annotations


class Unavailable(Exception):
    """The dependency named by `dependency` cannot serve now: wait with backoff and retry the same work."""

    dependency = "unknown"


class TopicMissing(Unavailable):
    """A topic the process reads does not exist (yet): wait for `orderstatus topics create` like an outage,
    and say so in one line where a one-shot command meets it."""

    dependency = "kafka"

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic} does not exist (`orderstatus topics create` makes it)")


class RulesNotLoaded(Unavailable):
    """No rule set in the database yet: the worker waits instead of rejecting everything (part of the
    unit-of-work port's contract, so every implementation raises this one)."""

    dependency = "rules"


class ClaimLost(Exception):
    """A concurrent unit of work recorded one of the claimed command ids first (claims are checked when
    made and written at commit, with their outcomes). Nothing of this unit of work was committed: redo it,
    and the redo sees those ids as duplicates (part of the unit-of-work port's contract)."""


class PositionGap(Exception):
    """The database's position of a partition is behind the first message of the unit of work (issue 24): the
    database lost commits this consumer made (a failover to a standby that was behind) and nothing of the unit
    was committed. Read the partitions again from `positions` ((topic, partition) -> the database's next offset)
    and decide those messages again (part of the unit-of-work port's contract)."""

    def __init__(self, positions: dict[tuple[str, int], int]) -> None:
        super().__init__(f"the database's positions are behind this consumer: {sorted(positions.items())}")
        self.positions = positions


class TopicNotCreated(Exception):
    """The broker refused to create a topic (a replication factor above the number of brokers, an invalid
    configuration, no authorisation): not an outage, retrying the same request fails the same way."""


class AccessRefused(Exception):
    """The dependency refused this process's credentials or permissions: a wrong password, a server certificate
    the configured CA did not sign, a missing ACL. No outage: trying again cannot help until an operator fixes
    the settings or the grants, so a process stops (exit 1) and a command fails, each with this one line."""

    dependency = "unknown"


class KafkaRefused(AccessRefused):
    dependency = "kafka"


class CommitRefused(Exception):
    """The consumer group refused an offset commit because it moved on (a rebalance is under way or took the
    partitions): the new owner reads from the last commit and the consumers dedupe. No outage, nothing to retry."""
