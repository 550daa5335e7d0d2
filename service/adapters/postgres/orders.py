"""Orders and their facts in Postgres: import, lock-and-read for a unit of work, apply a change."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from service.domain.events import StatusChanged
from service.domain.model import OrderFacts, RuleSet
from service.contract.orders_file import OrderRecord

_FACTS_SQL = """
SELECT o.order_id, o.order_type, o.client_id, o.status_id, o.version, o.payments_total,
       ARRAY(SELECT note_ref FROM order_goods_out_notes g WHERE g.order_id = o.order_id ORDER BY note_ref) AS goods_out_notes,
       ARRAY(SELECT reservation_ref FROM order_reservations r WHERE r.order_id = o.order_id ORDER BY reservation_ref) AS reservations,
       ARRAY(SELECT coupon_code FROM order_coupons c WHERE c.order_id = o.order_id ORDER BY coupon_code) AS coupons
  FROM orders o
 WHERE o.order_id = ANY($1::bigint[])
 ORDER BY o.order_id
"""


def _facts(row) -> OrderFacts:
    return OrderFacts(
        order_id=row["order_id"],
        order_type=row["order_type"],
        status_id=row["status_id"],
        version=row["version"],
        client_id=row["client_id"],
        payments_total=Decimal(row["payments_total"]),
        goods_out_notes=tuple(row["goods_out_notes"]),
        reservations=tuple(row["reservations"]),
        coupons=tuple(row["coupons"]),
    )


async def lock_orders(conn, order_ids: Iterable[int]) -> dict[int, OrderFacts]:
    """Lock the orders (ascending id, so concurrent units of work cannot deadlock) and read their facts."""
    ids = sorted(set(order_ids))
    if not ids:
        return {}
    await conn.execute("SELECT 1 FROM orders WHERE order_id = ANY($1::bigint[]) ORDER BY order_id FOR UPDATE", ids)
    return {row["order_id"]: _facts(row) for row in await conn.fetch(_FACTS_SQL, ids)}


async def read_order(conn, order_id: int) -> OrderFacts | None:
    rows = await conn.fetch(_FACTS_SQL, [order_id])
    return _facts(rows[0]) if rows else None


async def apply_changes(conn, applied: Sequence[StatusChanged]) -> None:
    """Write accepted changes set-based, a statement per kind rather than per change: the orders'
    final status and version, the cancel side effects (R7) and one history note per change (R8)."""
    if not applied:
        return
    final: dict[int, tuple[int, int, datetime, int]] = {}
    for change in applied:
        first_version = final.get(change.order_id, (0, 0, None, change.version - 1))[3]
        final[change.order_id] = (change.to_status.id, change.version, change.occurred_at, first_version)
    ids = list(final)
    updated = await conn.fetchval(
        """
        WITH u AS (
            SELECT * FROM unnest($1::bigint[], $2::int[], $3::int[], $4::timestamptz[], $5::int[])
                AS u(order_id, status_id, version, at, base_version))
        , changed AS (
            UPDATE orders o SET status_id = u.status_id, version = u.version, updated_at = u.at
              FROM u WHERE o.order_id = u.order_id AND o.version = u.base_version
            RETURNING 1)
        SELECT count(*) FROM changed
        """,
        ids, [final[i][0] for i in ids], [final[i][1] for i in ids], [final[i][2] for i in ids],
        [final[i][3] for i in ids],
    )
    if updated != len(ids):  # the rows are locked, so this is a logic error, never a race
        raise RuntimeError(f"{len(ids) - updated} orders changed under their lock")
    removed = [(i.order_id, list(i.removed_reservations)) for i in applied if i.removed_reservations]
    if removed:
        await conn.executemany(
            "DELETE FROM order_reservations WHERE order_id = $1 AND reservation_ref = ANY($2::text[])", removed
        )
    removed = [(i.order_id, list(i.removed_coupons)) for i in applied if i.removed_coupons]
    if removed:
        await conn.executemany("DELETE FROM order_coupons WHERE order_id = $1 AND coupon_code = ANY($2::text[])", removed)
    # one statement for every note; the removed lists travel as JSON text because Postgres arrays
    # of arrays must be rectangular
    await conn.execute(
        """
        INSERT INTO order_history (order_id, version, event_id, command_id, from_status, to_status, override,
                                   actor, note_text, is_public, file_id, removed_reservations, removed_coupons,
                                   occurred_at)
        SELECT order_id, version, event_id, command_id, from_status, to_status, override, actor, note_text,
               is_public, file_id,
               ARRAY(SELECT jsonb_array_elements_text(removed_reservations::jsonb)),
               ARRAY(SELECT jsonb_array_elements_text(removed_coupons::jsonb)), occurred_at
          FROM unnest($1::bigint[], $2::int[], $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[], $7::bool[],
                      $8::jsonb[], $9::text[], $10::bool[], $11::bigint[], $12::text[], $13::text[],
                      $14::timestamptz[])
            AS h(order_id, version, event_id, command_id, from_status, to_status, override, actor, note_text,
                 is_public, file_id, removed_reservations, removed_coupons, occurred_at)
        """,
        [i.order_id for i in applied],
        [i.version for i in applied],
        [i.event_id for i in applied],
        [i.command_id for i in applied],
        [i.from_status.as_dict() for i in applied],
        [i.to_status.as_dict() for i in applied],
        [i.override for i in applied],
        [i.actor.as_recorded_dict() for i in applied],
        [i.note.text for i in applied],
        [i.note.is_public for i in applied],
        [i.note.file_id for i in applied],
        [json.dumps(i.removed_reservations) for i in applied],
        [json.dumps(i.removed_coupons) for i in applied],
        [i.occurred_at for i in applied],
    )


@dataclass(frozen=True)
class ImportResult:
    """What `upsert_orders` did. `kept_status`: orders the service had already changed (they have history),
    whose status the import left alone; `differing`: those of them whose file status is not their status."""

    imported: int
    kept_status: int = 0
    differing: tuple[int, ...] = ()


async def upsert_orders(
    conn, records: Sequence[tuple[OrderRecord, int | None]], rules: RuleSet
) -> ImportResult:
    """Upsert orders and replace their facts, all in one transaction.

    The status: a new order takes the file's status (an administrative import; default its type's
    initial status), and so does an order the service has never changed (version 0, no history). Once
    the service has changed an order, its status belongs to the service: status and history must never
    disagree, so the import updates the facts and leaves the status and version alone, counting the
    orders whose file status differs (change them with a command, e.g. a manager's override)."""
    async with conn.transaction():
        ids = sorted({record.order_id for record, _ in records})
        stored = {
            row["order_id"]: (row["status_id"], row["version"])
            for row in await conn.fetch(
                "SELECT order_id, status_id, version FROM orders WHERE order_id = ANY($1::bigint[]) "
                "ORDER BY order_id FOR UPDATE", ids)
        }
        kept: set[int] = set()
        differing: set[int] = set()
        for record, status_id in records:
            initial = rules.initial_status(record.order_type)
            current = stored.get(record.order_id)
            if current is not None and current[1] > 0:
                kept.add(record.order_id)
                if status_id is not None and status_id != current[0]:
                    differing.add(record.order_id)
                status_id = None  # keep the status the history ends with
            await conn.execute(
                """
                INSERT INTO orders (order_id, order_type, client_id, status_id, payments_total)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (order_id) DO UPDATE
                   SET order_type = EXCLUDED.order_type, client_id = EXCLUDED.client_id,
                       status_id = COALESCE($6, orders.status_id),
                       payments_total = EXCLUDED.payments_total, updated_at = now()
                """,
                record.order_id,
                record.order_type,
                record.client_id,
                status_id if status_id is not None else initial.id,
                record.payments_total,
                status_id,
            )
            oid = record.order_id
            for table in ("order_contacts", "order_goods_out_notes", "order_reservations", "order_coupons"):
                await conn.execute(f"DELETE FROM {table} WHERE order_id = $1", oid)
            contacts = {c.email: c for c in record.contacts}  # one row per address; the last one wins
            await conn.executemany(
                "INSERT INTO order_contacts (order_id, email, name, kind) VALUES ($1, $2, $3, $4)",
                [(oid, c.email, c.name, c.kind) for c in contacts.values()],
            )
            for table, column, values in (
                ("order_goods_out_notes", "note_ref", record.goods_out_notes),
                ("order_reservations", "reservation_ref", record.reservations),
                ("order_coupons", "coupon_code", record.coupons),
            ):
                await conn.executemany(
                    f"INSERT INTO {table} (order_id, {column}) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    [(oid, v) for v in values],
                )
    return ImportResult(len(records), len(kept), tuple(sorted(differing)))


async def fetch_contacts(conn, order_id: int) -> list:
    return await conn.fetch(
        "SELECT email, name, kind FROM order_contacts WHERE order_id = $1 ORDER BY kind, email", order_id
    )


async def fetch_history(conn, order_id: int, *, after_version: int = 0, limit: int | None = None) -> list[dict]:
    """The order's history in version order: entries after `after_version`, at most `limit` (None: all)."""
    rows = await conn.fetch("SELECT * FROM order_history WHERE order_id = $1 AND version > $2 ORDER BY version"
                            " LIMIT $3", order_id, after_version, limit)
    return [
        {
            "version": r["version"],
            "event_id": str(r["event_id"]),
            "command_id": r["command_id"],
            "from_status": r["from_status"],
            "to_status": r["to_status"],
            "override": r["override"],
            "actor": r["actor"],
            "note": {"text": r["note_text"], "is_public": r["is_public"], "file_id": r["file_id"]},
            "removed_reservations": list(r["removed_reservations"]),
            "removed_coupons": list(r["removed_coupons"]),
            "occurred_at": r["occurred_at"].isoformat(),
        }
        for r in rows
    ]
