"""The `processed_commands` table: the dedupe record of every command (DESIGN §7.2).

A second insert of the same command id is the duplicate signal; a concurrent transaction claiming
the same id waits on the unique key and then sees it taken, so two workers never both apply one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


async def claim(conn, keys: Iterable[tuple[str, str, str]]) -> set[str]:
    """Insert (command_id, command_type, source) records as pending; returns the ids that are new."""
    unique: dict[str, tuple[str, str]] = {}
    for command_id, command_type, source in keys:
        unique.setdefault(command_id, (command_type, source))
    if not unique:
        return set()
    ids = sorted(unique)  # one global order of key locks between concurrent batches
    rows = await conn.fetch(
        """
        INSERT INTO processed_commands (command_id, command_type, outcome, source)
        SELECT id, t, 'pending', s FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, t, s)
        ON CONFLICT (command_id) DO NOTHING
        RETURNING command_id
        """,
        ids,
        [unique[i][0] for i in ids],
        [unique[i][1] for i in ids],
    )
    return {r["command_id"] for r in rows}


async def take_over_invalid(conn, keys: Iterable[tuple[str, str, str]]) -> set[str]:
    """Reclaim (command_id, command_type, source) records whose outcome is `invalid:*` as pending, for
    a redriven command (DESIGN §11); returns the ids taken over. A record with any other outcome (the
    command applied, was rejected, or is being redriven by a concurrent transaction, which holds the
    row) is left alone: the update waits for that transaction and then sees the outcome it wrote."""
    unique: dict[str, tuple[str, str]] = {}
    for command_id, command_type, source in keys:
        unique.setdefault(command_id, (command_type, source))
    if not unique:
        return set()
    ids = sorted(unique)
    rows = await conn.fetch(
        """
        UPDATE processed_commands p SET outcome = 'pending', command_type = u.t, source = u.s, processed_at = now()
          FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, t, s)
         WHERE p.command_id = u.id AND p.outcome LIKE 'invalid:%'
        RETURNING p.command_id
        """,
        ids,
        [unique[i][0] for i in ids],
        [unique[i][1] for i in ids],
    )
    return {r["command_id"] for r in rows}


async def record_outcomes(conn, outcomes: Sequence[tuple[str, str]]) -> None:
    """Write each claimed command's outcome label."""
    if not outcomes:
        return
    await conn.execute(
        """
        UPDATE processed_commands p SET outcome = u.outcome
          FROM unnest($1::text[], $2::text[]) AS u(command_id, outcome)
         WHERE p.command_id = u.command_id
        """,
        [command_id for command_id, _ in outcomes],
        [outcome for _, outcome in outcomes],
    )
