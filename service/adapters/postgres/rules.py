"""Reading and atomically replacing the rule set in Postgres."""

from __future__ import annotations

import asyncpg

from service.domain.model import RuleSet, Status, Transition

async def replace_rules(conn: asyncpg.Connection, rules: RuleSet, source_sha256: str | None = None) -> int:
    """Swap the whole rule set in one transaction and bump the version; returns the new version.

    Workers read the version inside each unit of work, so the next command sees the new rules.
    """
    async with conn.transaction():
        # the row lock serialises concurrent loads and makes workers' FOR SHARE reads wait for the swap
        version = await conn.fetchval(
            """
            INSERT INTO rules_meta (singleton, version, override_roles, source_sha256, loaded_at)
            VALUES (true, 1, $1, $2, now())
            ON CONFLICT (singleton) DO UPDATE
               SET version = rules_meta.version + 1, override_roles = EXCLUDED.override_roles,
                   source_sha256 = EXCLUDED.source_sha256, loaded_at = now()
            RETURNING version
            """,
            sorted(rules.override_roles),
            source_sha256,
        )
        await conn.execute("DELETE FROM transitions")
        await conn.execute("DELETE FROM statuses")
        await conn.copy_records_to_table(
            "statuses",
            records=[
                (s.id, s.code, s.name, sorted(s.order_types), s.initial, s.cancelled, s.invoiced, s.hidden, s.can_override_to)
                for s in rules.statuses
            ],
            columns=["id", "code", "name", "order_types", "initial", "cancelled", "invoiced", "hidden", "can_override_to"],
        )
        await conn.copy_records_to_table(
            "transitions",
            records=[(t.order_type, t.from_id, t.to_id, sorted(t.roles)) for t in rules.transitions],
            columns=["order_type", "from_status", "to_status", "roles"],
        )
    return int(version)


async def current_version(conn: asyncpg.Connection) -> int | None:
    return await conn.fetchval("SELECT version FROM rules_meta FOR SHARE")


async def fetch_rules(conn: asyncpg.Connection) -> RuleSet | None:
    """The stored rule set, or None when no rules were ever loaded."""
    meta = await conn.fetchrow("SELECT version, override_roles FROM rules_meta")
    if meta is None:
        return None
    statuses = await conn.fetch("SELECT * FROM statuses ORDER BY id")
    transitions = await conn.fetch("SELECT * FROM transitions ORDER BY order_type, from_status, to_status")
    return RuleSet(
        statuses=tuple(
            Status(
                id=r["id"],
                code=r["code"],
                name=r["name"],
                order_types=frozenset(r["order_types"]),
                initial=r["initial"],
                cancelled=r["cancelled"],
                invoiced=r["invoiced"],
                hidden=r["hidden"],
                can_override_to=r["can_override_to"],
            )
            for r in statuses
        ),
        transitions=tuple(
            Transition(r["order_type"], r["from_status"], r["to_status"], frozenset(r["roles"])) for r in transitions
        ),
        override_roles=frozenset(meta["override_roles"]),
        version=int(meta["version"]),
    )


class RulesCache:
    """The worker's copy of the rule set, refreshed inside a unit of work when the version moved."""

    def __init__(self) -> None:
        self._rules: RuleSet | None = None

    async def get(self, conn: asyncpg.Connection) -> RuleSet | None:
        version = await current_version(conn)
        if version is None:
            return None
        if self._rules is None or self._rules.version != version:
            self._rules = await fetch_rules(conn)
        return self._rules
