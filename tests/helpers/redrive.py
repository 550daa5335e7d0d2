"""Redriving dead letters in the service-layer tests: the fake unit of work with the redrive take-over,
and a dead letter turned into the command a redrive sends back (DESIGN §11)."""

from __future__ import annotations

from collections.abc import Iterable

from service.contract.events import WireMessage
from service.contract.redrive import redrive_headers
from service.domain.commands import SourceMessage
from tests.helpers.fakes import FakeUnitOfWork, ProcessedRecord


class RedrivableFakeUnitOfWork(FakeUnitOfWork):
    """`FakeUnitOfWork` plus `take_over_invalid`, as `PostgresUnitOfWork` has it: a record whose outcome is
    `invalid:*` is reclaimed as pending (visible only on commit, like every claim)."""

    async def take_over_invalid(self, keys: Iterable[tuple[str, str, str]]) -> set[str]:
        self._check_open()
        taken: set[str] = set()
        for command_id, command_type, source in keys:
            record = self.db.processed.get(command_id)
            if record is None or not record.outcome.startswith("invalid:") or command_id in self._claimed:
                continue
            self._claimed[command_id] = ProcessedRecord(command_type, source)
            taken.add(command_id)
        return taken


def redriven(letter: WireMessage, dlq_offset: int, *, topic: str = "commands", partition: int = 0, offset: int,
             dlq_partition: int = 0) -> SourceMessage:
    """The message a redrive of `letter` (found at `dlq_partition:dlq_offset`) puts on the commands topic at
    `offset`: the original key and value, the original's headers and the `redrive.*` ones."""
    return SourceMessage(topic, partition, offset, letter.key, letter.value,
                         tuple(redrive_headers(letter.headers, dlq_partition, dlq_offset)))
