"""From Kafka records to the commands a batch processes: parse at the edge, check the actor, claim.

A redriven dead letter (DESIGN §11, headers `redrive.*`) has one chance: its redrive key (the DLQ
record it came from) is claimed first, so a redrive sent twice or replayed with the commands topic
does nothing the second time. A redriven command whose id was recorded as invalid takes that record
over and is processed once more; a command id that applied or was rejected stays a duplicate, so a
redrive never applies a command twice. `claim` returns what it claimed; it writes nothing itself."""

from __future__ import annotations

from dataclasses import dataclass, replace

from service.contract.commands import InputLimits, parse_command
from service.contract.events import Topics
from service.contract.redrive import Redrive, read_redrive
from service.domain.commands import ChangeOrderStatus, Command, InvalidCommand, OverrideOrderStatuses, SourceMessage
from service.domain.model import Actor
from service.worker.config import ActorCheck
from service.worker.handlers import invalid_dedupe_key
from service.worker.ports import UnitOfWork


@dataclass
class Parsed:
    source: SourceMessage
    command: Command | None
    invalid: InvalidCommand | None
    redrive: Redrive | None = None
    refused: str | None = None  # why the actor check refused it: then it is recorded under its position
    actor: Actor | None = None  # the actor to act as, once the check passed

    @property
    def dedupe_key(self) -> str:
        if self.refused is not None:
            return f"@{self.source.position}"
        return self.command.command_id if self.command else invalid_dedupe_key(self.invalid, self.source)

    @property
    def kind(self) -> str:
        if self.refused is not None:
            return "unauthenticated"
        return self.command.type if self.command else "invalid"

    def order_ids(self) -> list[int]:
        if isinstance(self.command, ChangeOrderStatus):
            return [self.command.order_id]
        if isinstance(self.command, OverrideOrderStatuses):
            return [item.order_id for item in self.command.items]
        return []


def parse(source: SourceMessage, limits: InputLimits) -> Parsed:
    redrive = read_redrive(source.headers)
    if source.unreadable is not None:  # the Kafka client could not decompress its batch: no bytes to read
        return Parsed(source, None, InvalidCommand("unreadable", source.unreadable), redrive)
    parsed = parse_command(source.value, limits)
    if isinstance(parsed, InvalidCommand):
        return Parsed(source, None, parsed, redrive)
    return Parsed(source, parsed, None, redrive)


def authenticate(p: Parsed, check_actor: ActorCheck) -> Parsed:
    """The actor check, before anything is claimed (issue 23): a refused command keeps nothing it claims —
    its `redrive.*` headers count for nothing and it is recorded under its position, not its id. With
    `ACTOR_AUTH=required` an unparseable message's token is checked too: without a valid one its claimed
    command id and actor are dropped (dead-lettered under its position, no rejection in its name)."""
    if p.command is not None:
        verdict = check_actor(p.source.headers, p.command.actor, (p.command.command_id, p.source.value))
        if isinstance(verdict, str):
            return replace(p, refused=verdict, redrive=None)
        return replace(p, actor=verdict)
    token_refusal = getattr(check_actor, "token_refusal", None)
    why = token_refusal(p.source.headers) if token_refusal is not None else None
    if why is None:
        return p
    return replace(p, redrive=None, invalid=replace(p.invalid, command_id=None, actor=None))


@dataclass(frozen=True)
class Fresh:
    """A message of the batch to process now."""

    parsed: Parsed
    retaken: bool = False  # a redriven command recorded as invalid, taken over to be processed once more


@dataclass(frozen=True)
class Claimed:
    """What a batch claimed: the messages to process, in batch order, and the redrive keys spent on a command
    that applied or was rejected before (recorded as `redrive:duplicate`). Every other message is a duplicate."""

    fresh: list[Fresh]
    spent_on_duplicates: list[str]


async def claim(uow: UnitOfWork, parsed: list[Parsed], topics: Topics) -> Claimed:
    """Claim the batch's redrive keys, then its dedupe keys, then take over the invalid records of redriven
    commands. A key repeated inside one batch counts once: the first message wins."""
    live = await _unspent_redrives(uow, parsed, topics)
    new = await uow.claim((p.dedupe_key, p.kind, p.source.position) for p in live)
    retaken = await _take_over_invalid(uow, [p for p in live if p.redrive and p.dedupe_key not in new])
    fresh: list[Fresh] = []
    spent: list[str] = []
    for p in live:
        if p.dedupe_key in new:
            new.discard(p.dedupe_key)
            fresh.append(Fresh(p))
        elif p.redrive is not None and p.dedupe_key in retaken:  # only a redrive gets the record back
            retaken.discard(p.dedupe_key)
            fresh.append(Fresh(p, retaken=True))
        elif p.redrive is not None:  # the command applied or was rejected before: a duplicate
            spent.append(p.redrive.key(topics.dlq))
    return Claimed(fresh, spent)


async def _unspent_redrives(uow: UnitOfWork, parsed: list[Parsed], topics: Topics) -> list[Parsed]:
    """The batch without the redrives already spent: each DLQ record's redrive key is claimed once, so a
    redrive sent twice, or replayed with the commands topic, is a duplicate whatever its command id."""
    redriven = [p for p in parsed if p.redrive is not None]
    if not redriven:
        return parsed
    unspent = await uow.claim((p.redrive.key(topics.dlq), "redrive", p.source.position) for p in redriven)
    live = []
    for p in parsed:
        if p.redrive is None:
            live.append(p)
        elif p.redrive.key(topics.dlq) in unspent:
            unspent.discard(p.redrive.key(topics.dlq))
            live.append(p)
    return live


async def _take_over_invalid(uow: UnitOfWork, redriven: list[Parsed]) -> set[str]:
    """The command ids of redriven commands that were recorded as invalid, now reclaimed to be processed
    once more (a rules or limits fix may make them valid); any other record keeps them duplicates."""
    if not redriven:
        return set()
    return await uow.take_over_invalid((p.dedupe_key, p.kind, p.source.position) for p in redriven)
