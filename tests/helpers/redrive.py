"""Redriving dead letters in the service-layer tests: a dead letter turned into the command a redrive sends back
(DESIGN §11). The redrive take-over is `FakeUnitOfWork.take_over_invalid`, checked by the unit-of-work contract."""

from __future__ import annotations

from service.contract.events import WireMessage
from service.contract.redrive import redrive_headers
from service.domain.commands import SourceMessage


def redriven(letter: WireMessage, dlq_offset: int, *, topic: str = "commands", partition: int = 0, offset: int,
             dlq_partition: int = 0) -> SourceMessage:
    """The message a redrive of `letter` (found at `dlq_partition:dlq_offset`) puts on the commands topic at
    `offset`: the original key and value, the original's headers and the `redrive.*` ones."""
    return SourceMessage(topic, partition, offset, letter.key, letter.value,
                         tuple(redrive_headers(letter.headers, dlq_partition, dlq_offset)))
