"""The `processed_commands` table: the dedupe record of every command (DESIGN §7.2).

A command's record is written once, with its outcome, when its transaction commits: the batch first
reads which ids are recorded already (duplicates), and the insert at commit is the final word — a
concurrent transaction that recorded the same id first makes the insert skip it (it waits on the unique
key, then sees it taken), and the unit of work is redone, so two workers never both apply one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


async def recorded(conn, command_ids: Sequence[str]) -> set[str]:
    """The ids among `command_ids` that have a processed record (committed ones: a read, no lock)."""
    if not command_ids:
        return set()
    rows = await conn.fetch(
        "SELECT command_id FROM processed_commands WHERE command_id = ANY($1::text[])", list(command_ids)
    )
    return {r["command_id"] for r in rows}


async def insert(conn, records: Sequence[tuple[str, str, str, str]]) -> set[str]:
    """Insert (command_id, command_type, source, outcome) records, each written once with its outcome;
    returns the ids that were inserted. An id recorded by a concurrent transaction first is left out: the
    insert waits on the unique key for that transaction and, once it committed, skips the row."""
    if not records:
        return set()
    ordered = sorted(records)  # one global order of key locks between concurrent transactions
    rows = await conn.fetch(
        """
        INSERT INTO processed_commands (command_id, command_type, source, outcome)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
        ON CONFLICT (command_id) DO NOTHING
        RETURNING command_id
        """,
        [r[0] for r in ordered], [r[1] for r in ordered], [r[2] for r in ordered], [r[3] for r in ordered],
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
    """Write the outcome label of records that exist (the ones a redrive took over)."""
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
