"""The rules YAML of DESIGN §5.1: parsed with pydantic at the edge, checked, turned into a RuleSet."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.contract.validation import first_error
from service.domain.model import ROLES, RuleSet, Status, Transition


class RulesFileError(ValueError):
    """A refusal of a rules file; the message is one line naming the offending entry."""


class _StatusEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)
    id: int
    code: str = Field(min_length=1, max_length=100)  # commands name a status by code in up to 100 characters
    name: str = Field(min_length=1, max_length=200)
    order_types: list[str] = Field(min_length=1)
    initial: bool = False
    cancelled: bool = False
    invoiced: bool = False
    hidden: bool = False
    can_override_to: bool = False


class _TransitionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    order_type: str
    from_: str | int = Field(alias="from")
    to: str | int
    roles: list[str] = Field(min_length=1)


class _RulesDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    override_roles: list[str] = Field(default_factory=list)
    statuses: list[_StatusEntry] = Field(min_length=1)
    transitions: list[_TransitionEntry] = Field(default_factory=list)


def parse_rules(text: str) -> RuleSet:
    """Parse and check a rules document; raise RulesFileError naming the first offending entry."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RulesFileError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise RulesFileError("the rules file must be a mapping with statuses, transitions and override_roles")
    try:
        doc = _RulesDocument.model_validate(raw)
    except ValidationError as exc:
        raise RulesFileError(first_error(exc, whole="rules")) from None
    return _build(doc)


def load_rules_file(path: str | Path) -> RuleSet:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesFileError(f"cannot read {path}: {exc.strerror}") from None
    return parse_rules(text)


def _build(doc: _RulesDocument) -> RuleSet:
    for role in doc.override_roles:
        if role not in ROLES:
            raise RulesFileError(f"override_roles: unknown role {role!r} (roles: {', '.join(sorted(ROLES))})")

    for key in ("id", "code"):
        counts = Counter(getattr(s, key) for s in doc.statuses)
        for value, n in counts.items():
            if n > 1:
                raise RulesFileError(f"statuses: duplicate {key} {value!r}")

    statuses = tuple(
        Status(
            id=s.id,
            code=s.code,
            name=s.name,
            order_types=frozenset(s.order_types),
            initial=s.initial,
            cancelled=s.cancelled,
            invoiced=s.invoiced,
            hidden=s.hidden,
            can_override_to=s.can_override_to,
        )
        for s in doc.statuses
    )
    order_types = {t for s in statuses for t in s.order_types}
    for flag in ("initial", "cancelled", "invoiced"):
        for order_type in sorted(order_types):
            flagged = [s.code for s in statuses if getattr(s, flag) and order_type in s.order_types]
            if len(flagged) > 1:
                raise RulesFileError(
                    f"statuses: more than one {flag} status for order type {order_type}: {', '.join(flagged)}"
                )

    by_code = {s.code: s for s in statuses}
    by_id = {s.id: s for s in statuses}
    transitions: list[Transition] = []
    seen: set[tuple[str, int, int]] = set()
    for index, t in enumerate(doc.transitions):
        label = f"transitions[{index}] ({t.order_type}: {t.from_} -> {t.to})"
        if t.order_type not in order_types:
            raise RulesFileError(f"{label}: unknown order type {t.order_type!r}")
        ends = []
        for end in (t.from_, t.to):
            status = by_code.get(end) if isinstance(end, str) else by_id.get(end)
            if status is None:
                raise RulesFileError(f"{label}: unknown status {end!r}")
            if t.order_type not in status.order_types:
                raise RulesFileError(f"{label}: status {status.code} is not available to order type {t.order_type}")
            ends.append(status)
        for role in t.roles:
            if role not in ROLES:
                raise RulesFileError(f"{label}: unknown role {role!r} (roles: {', '.join(sorted(ROLES))})")
        key = (t.order_type, ends[0].id, ends[1].id)
        if key in seen:
            raise RulesFileError(f"{label}: duplicate transition")
        if ends[0].id == ends[1].id:
            raise RulesFileError(f"{label}: a transition must change the status")
        seen.add(key)
        transitions.append(Transition(t.order_type, ends[0].id, ends[1].id, frozenset(t.roles)))

    return RuleSet(statuses=statuses, transitions=tuple(transitions), override_roles=frozenset(doc.override_roles))
