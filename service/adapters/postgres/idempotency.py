"""The gateway's idempotency keys (migration 0007): a caller's key bound, once and for good, to the
fingerprint of the first request that used it."""

from __future__ import annotations


async def bind(conn, command_id: str, fingerprint: str) -> str:
    """The fingerprint the key (as its derived command id) is bound to: `fingerprint` when this request is the
    first, else the first request's. The insert waits for a concurrent first insert of the same key to commit, so
    the row read afterwards is the winner's."""
    await conn.execute(
        "INSERT INTO idempotency_keys (command_id, fingerprint) VALUES ($1, $2) ON CONFLICT (command_id) DO NOTHING",
        command_id, fingerprint,
    )
    return await conn.fetchval("SELECT fingerprint FROM idempotency_keys WHERE command_id = $1", command_id)
