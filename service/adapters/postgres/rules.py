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
    """The rules version, its row share-locked until the transaction ends (a unit of work: a swap waits)."""
    return await conn.fetchval("SELECT version FROM rules_meta FOR SHARE")


async def stored_version(conn: asyncpg.Connection) -> int | None:
    """The rules version, read without a lock (a reader: the gateway's role may only SELECT)."""
    return await conn.fetchval("SELECT version FROM rules_meta")


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
    """The one rules cache: the rule set as last read, read again only when the version in `rules_meta` moved
    (every `rules load` bumps it). The worker's units of work and every reader (the read API, the gateway)
    use it; one per process face and pool, never module-wide: two databases number their versions apart.

    `get` is for a unit of work: it share-locks the version row, so a concurrent swap waits for the unit and
    the unit never decides with rules a swap is replacing. `read` is for readers: no lock, and a reload runs
    in one read-only repeatable-read transaction (when the connection is not in one already), so a reader
    never caches a rule set torn by a concurrent swap."""

    def __init__(self) -> None:
        self._rules: RuleSet | None = None

    async def get(self, conn: asyncpg.Connection) -> RuleSet | None:
        """The rules for a unit of work (None: none loaded), the version row share-locked."""
        version = await current_version(conn)
        if version is None:
            return None
        if self._rules is None or self._rules.version != version:
            self._rules = await fetch_rules(conn)
        return self._rules

    async def read(self, conn: asyncpg.Connection) -> RuleSet | None:
        """The rules for a reader (None: none loaded): one version query, and a reload when it moved."""
        version = await stored_version(conn)
        if version is None:
            return None
        cached = self._rules
        if cached is not None and cached.version == version:
            return cached
        if conn.is_in_transaction():
            rules = await fetch_rules(conn)
        else:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                rules = await fetch_rules(conn)
        self._rules = rules
        return rules
