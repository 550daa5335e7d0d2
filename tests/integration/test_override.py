"""OverrideOrderStatuses end to end (issue 4; DESIGN R11, R12, §5.3, §6.1): real broker, real Postgres,
the worker in this process.

Sample facts used (service/devkit/samples): 1029 SO Confirmed, no payments, reservation R-1, coupon SPRING10;
1030 SO Confirmed with payments 25.00; 1031 ReadyToShip with goods out; 1032 Invoiced; 1033 SO Draft;
1034 SO Dispatched with goods out. Overridable statuses: OnHold, CourierClaim, CancelledByClient,
PurchaseCancelled, Completed, Closed, TranslationCancelled; override roles: manager, system.
"""

from __future__ import annotations

import json

import aiohttp

from service.adapters.postgres import views
from service.adapters.postgres.connection import connect, create_pool
from service.adapters.postgres.views import PostgresReadViews
from service.domain.model import Actor
from service.runtime.health import Progress, bound_port, start_http
from service.runtime.metrics import Metrics
from service.queries.http import routes
from service.runtime.settings import Settings
from tests.helpers.commands import change, override
from tests.helpers.database import UNPUBLISHED, fetch, import_orders, seed, url_of
from tests.helpers.producing import produce
from tests.helpers.services import running_worker
from tests.helpers.topics import TopicReader
from tests.helpers.waiting import wait_until

CONFIRMED, ON_HOLD, DISPATCHED, COURIER_CLAIM, CANCELLED = 2, 4, 6, 7, 21
REF = {
    2: {"id": 2, "code": "Confirmed", "name": "Confirmed"},
    4: {"id": 4, "code": "OnHold", "name": "On hold"},
    6: {"id": 6, "code": "Dispatched", "name": "Dispatched"},
    7: {"id": 7, "code": "CourierClaim", "name": "Courier claim"},
    21: {"id": 21, "code": "CancelledByClient", "name": "Cancelled"},
}


# ---------------------------------------------------------------- helpers


def summaries(reader: TopicReader, command_id: str) -> list:
    return [r for r in reader.records
            if json.loads(r.value).get("type") == "OrderStatusOverrideCompleted"
            and json.loads(r.value)["command_id"] == command_id]


def item_records(reader: TopicReader, command_id: str) -> list:
    """Per-item events of a command (everything but its summary), in topic-read order."""
    return [r for r in reader.records
            if json.loads(r.value)["command_id"] == command_id
            and json.loads(r.value)["type"] != "OrderStatusOverrideCompleted"]


async def outbox_counts(settings: Settings) -> tuple[int, int]:
    rows = await fetch(
        settings,
        f"SELECT count(*) AS n, count(*) FILTER (WHERE {UNPUBLISHED}) AS unpublished FROM outbox WHERE topic = $1",
        settings.events_topic,
    )
    return rows[0]["n"], rows[0]["unpublished"]


async def settle(settings: Settings, reader: TopicReader, command_ids: set[str], timeout: float = 30.0) -> None:
    """Wait until each command's summary (or single event) is read, every outbox event row is published
    and the reader holds as many records as the outbox has rows: after that nothing more is coming."""
    async def settled() -> bool:
        await reader.poll()
        if not command_ids <= {json.loads(r.value)["command_id"] for r in reader.records}:
            return False
        total, unpublished = await outbox_counts(settings)
        if unpublished == 0 and len(reader.records) >= total:
            assert len(reader.records) == total, "an event was published twice"
            return True
        return False

    await wait_until(settled, timeout, f"the events of {sorted(command_ids)} read and every outbox row published",
                     interval=0)


async def wait_summary(settings: Settings, reader: TopicReader, command_id: str) -> dict:
    """Wait for the command's outcome to be fully published and return its one summary."""
    await settle(settings, reader, {command_id})
    found = summaries(reader, command_id)
    assert len(found) == 1, f"expected exactly one OrderStatusOverrideCompleted, got {len(found)}"
    return json.loads(found[0].value)


async def order_rows(settings: Settings, ids) -> dict[int, tuple[int, int]]:
    rows = await fetch(settings, "SELECT order_id, status_id, version FROM orders WHERE order_id = ANY($1::bigint[])",
                       list(ids))
    return {r["order_id"]: (r["status_id"], r["version"]) for r in rows}


async def history_of(settings: Settings, order_id: int) -> list:
    return await fetch(settings, "SELECT * FROM order_history WHERE order_id = $1 ORDER BY version", order_id)


def bulk_orders(first_id: int, count: int) -> list[dict]:
    return [{"order_id": first_id + i, "order_type": "SO", "status": "Confirmed", "client_id": "c-bulk",
             "contacts": [{"email": f"o{first_id + i}@example.com", "kind": "client"}]} for i in range(count)]


def header(record, name: str) -> bytes | None:
    return dict(record.headers or ()).get(name)


# ---------------------------------------------------------------- batches


async def test_mixed_batch_reports_each_item_and_applies_only_the_good_ones(settings):
    """StoreFeeder-like batch: per-item Changed/Rejected events, one summary in item order, only good items applied."""
    await seed(settings)
    cmd = override(
        [(1029, "CancelledByClient"), (4242, "OnHold"), (1033, "Confirmed"), (1034, "CourierClaim")],
        note={"text": "bulk fix", "is_public": True}, notify=False, correlation_id="corr-4",
    )
    cid = cmd["command_id"]
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [cmd])
        summary = await wait_summary(settings, reader, cid)
        items = item_records(reader, cid)

    by_order = {json.loads(r.value)["order_id"]: r for r in items}
    assert sorted(by_order) == [1029, 1033, 1034, 4242] and len(items) == 4
    for order_id, record in by_order.items():
        assert record.key == str(order_id).encode()  # per-item events are keyed by order id
        assert header(record, "ce_subject") == str(order_id).encode()

    cancelled = json.loads(by_order[1029].value)
    assert cancelled["type"] == "OrderStatusChanged"
    assert cancelled["override"] is True and cancelled["notify"] is False
    assert (cancelled["version"], cancelled["from_status"], cancelled["to_status"]) == (1, REF[2], REF[21])
    assert cancelled["note"] == {"text": "bulk fix", "is_public": True, "file_id": None}
    assert (cancelled["removed_reservations"], cancelled["removed_coupons"]) == (["R-1"], ["SPRING10"])
    assert cancelled["actor"] == {"id": "manager-1", "role": "manager", "client_id": None, "name": None}
    assert cancelled["correlation_id"] == "corr-4"
    claim = json.loads(by_order[1034].value)
    assert (claim["type"], claim["override"], claim["version"], claim["to_status"]) == (
        "OrderStatusChanged", True, 1, REF[7])
    assert claim["removed_reservations"] == [] and claim["removed_coupons"] == []

    missing, refused = json.loads(by_order[4242].value), json.loads(by_order[1033].value)
    assert (missing["type"], missing["reason"], missing["requested_status"]) == (
        "OrderStatusChangeRejected", "order_not_found", "OnHold")
    assert (refused["type"], refused["reason"], refused["requested_status"]) == (
        "OrderStatusChangeRejected", "override_not_allowed", "Confirmed")

    assert summary["correlation_id"] == "corr-4"
    assert summary["results"] == [
        {"order_id": 1029, "status": "CancelledByClient", "success": True, "reason": None, "error": None},
        {"order_id": 4242, "status": "OnHold", "success": False, "reason": "order_not_found",
         "error": missing["message"]},
        {"order_id": 1033, "status": "Confirmed", "success": False, "reason": "override_not_allowed",
         "error": refused["message"]},
        {"order_id": 1034, "status": "CourierClaim", "success": True, "reason": None, "error": None},
    ]
    assert missing["message"] and refused["message"]
    record = summaries(reader, cid)[0]
    assert record.key == cid.encode() and header(record, "ce_type") == b"OrderStatusOverrideCompleted"
    event_ids = [json.loads(r.value)["event_id"] for r in reader.records]
    assert len(set(event_ids)) == len(event_ids) == 5

    assert await order_rows(settings, [1029, 1033, 1034]) == {
        1029: (CANCELLED, 1), 1033: (1, 0), 1034: (COURIER_CLAIM, 1)}
    assert await fetch(settings, "SELECT * FROM order_reservations WHERE order_id = 1029") == []
    assert await fetch(settings, "SELECT * FROM order_coupons WHERE order_id = 1029") == []
    [note] = await history_of(settings, 1029)
    assert (note["override"], note["note_text"], note["is_public"], note["command_id"]) == (True, "bulk fix", True, cid)
    assert str(note["event_id"]) == cancelled["event_id"]
    assert await history_of(settings, 1033) == []
    [processed] = await fetch(settings, "SELECT outcome FROM processed_commands WHERE command_id = $1", cid)
    assert processed["outcome"] == "partial"


async def test_batch_of_exactly_the_limit_is_processed_whole(settings):
    """A batch of 50 items (the limit) applies all 50, with one summary listing them in item order."""
    await seed(settings)
    orders = bulk_orders(5001, 50)
    await import_orders(settings, orders)
    ids = [o["order_id"] for o in reversed(orders)]  # item order differs from id order
    cmd = override([(i, "OnHold") for i in ids], role="system")
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [cmd])
        summary = await wait_summary(settings, reader, cmd["command_id"])
        items = [json.loads(r.value) for r in item_records(reader, cmd["command_id"])]

    assert [(r["order_id"], r["status"], r["success"]) for r in summary["results"]] == [(i, "OnHold", True) for i in ids]
    assert len(items) == 50
    assert all(e["type"] == "OrderStatusChanged" and e["override"] and e["version"] == 1 for e in items)
    assert sorted(e["order_id"] for e in items) == sorted(ids)
    assert await order_rows(settings, ids) == {i: (ON_HOLD, 1) for i in ids}
    [count] = await fetch(settings, "SELECT count(*) AS n FROM order_history WHERE override")
    assert count["n"] == 50


async def test_batch_over_the_limit_is_rejected_whole(settings):
    """A batch of 51 items is rejected with batch_too_large: no item applies, no order's version moves,
    and the summary is compact (the item count and the reason, not a result per item)."""
    await seed(settings)
    orders = bulk_orders(6001, 51)
    await import_orders(settings, orders)
    ids = [o["order_id"] for o in orders]
    before = await fetch(settings, "SELECT order_id, status_id, version FROM orders ORDER BY order_id")
    cmd = override([(i, "OnHold") for i in ids])
    cid = cmd["command_id"]
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [cmd])
        summary = await wait_summary(settings, reader, cid)
        items = item_records(reader, cid)

    assert len(items) == 1
    rejected = json.loads(items[0].value)
    assert (rejected["type"], rejected["reason"], rejected["order_id"]) == (
        "OrderStatusChangeRejected", "batch_too_large", None)
    assert items[0].key == cid.encode()  # no order to key it by
    assert "50" in rejected["message"] and "51" in rejected["message"]
    assert (summary["results"], summary["item_count"], summary["reason"]) == ([], 51, "batch_too_large")
    assert await fetch(settings, "SELECT order_id, status_id, version FROM orders ORDER BY order_id") == before
    assert await fetch(settings, "SELECT * FROM order_history") == []
    assert await outbox_counts(settings) == (2, 0)
    [processed] = await fetch(settings, "SELECT outcome FROM processed_commands WHERE command_id = $1", cid)
    assert processed["outcome"] == "rejected:batch_too_large"


# ---------------------------------------------------------------- rules of an override (R11)


async def test_roles_without_override_permission_are_refused_on_every_item(settings):
    """A client (on its own orders) and a staff member get role_not_permitted for every item; nothing changes."""
    await seed(settings)
    by_client = override([(1029, "OnHold"), (1030, "CancelledByClient")], role="client",
                         actor={"id": "client-1", "role": "client", "client_id": "c-1"})
    by_staff = override([(1033, "OnHold"), (1034, "CourierClaim")], role="staff")
    before = await fetch(settings, "SELECT order_id, status_id, version FROM orders ORDER BY order_id")
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [by_client, by_staff])
        await settle(settings, reader, {by_client["command_id"], by_staff["command_id"]})

    for cmd, expected_ids in ((by_client, [1029, 1030]), (by_staff, [1033, 1034])):
        [summary] = [json.loads(r.value) for r in summaries(reader, cmd["command_id"])]
        assert [(r["order_id"], r["success"], r["reason"]) for r in summary["results"]] == [
            (i, False, "role_not_permitted") for i in expected_ids]
        items = [json.loads(r.value) for r in item_records(reader, cmd["command_id"])]
        assert sorted((e["type"], e["order_id"], e["reason"]) for e in items) == [
            ("OrderStatusChangeRejected", i, "role_not_permitted") for i in expected_ids]
    assert await fetch(settings, "SELECT order_id, status_id, version FROM orders ORDER BY order_id") == before
    assert await fetch(settings, "SELECT * FROM order_history") == []


async def test_cancel_override_still_obeys_the_cancel_guards(settings):
    """Overriding to a cancelled status is refused for payments, goods out and invoiced orders (R6 holds, R9)."""
    await seed(settings)
    cmd = override([(1030, "CancelledByClient"), (1031, "CancelledByClient"), (1032, 21)])
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [cmd])
        summary = await wait_summary(settings, reader, cmd["command_id"])

    assert [(r["order_id"], r["status"], r["success"], r["reason"]) for r in summary["results"]] == [
        (1030, "CancelledByClient", False, "cancel_has_payments"),
        (1031, "CancelledByClient", False, "cancel_has_goods_out_notes"),
        (1032, 21, False, "cancel_order_invoiced"),  # the status is echoed as given: id stays an id
    ]
    assert await order_rows(settings, [1030, 1031, 1032]) == {1030: (CONFIRMED, 0), 1031: (5, 0), 1032: (30, 0)}
    kept = await fetch(settings, "SELECT reservation_ref FROM order_reservations WHERE order_id = 1030")
    assert [r["reservation_ref"] for r in kept] == ["R-2"]
    assert await fetch(settings, "SELECT * FROM order_history") == []


async def test_same_order_twice_in_a_batch_applies_in_item_order(settings):
    """Two items on one order apply one after the other: versions 1 then 2, the second starting from the first."""
    await seed(settings)
    cmd = override([(1029, "OnHold"), (1029, "CourierClaim")])
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [cmd])
        summary = await wait_summary(settings, reader, cmd["command_id"])
        items = [json.loads(r.value) for r in item_records(reader, cmd["command_id"])]

    assert [r["success"] for r in summary["results"]] == [True, True]
    # same key (order id) => same partition => topic order is publish order
    assert [(e["version"], e["from_status"]["id"], e["to_status"]["id"]) for e in items] == [
        (1, CONFIRMED, ON_HOLD), (2, ON_HOLD, COURIER_CLAIM)]
    assert await order_rows(settings, [1029]) == {1029: (COURIER_CLAIM, 2)}
    assert [(h["version"], h["to_status"]["id"]) for h in await history_of(settings, 1029)] == [
        (1, ON_HOLD), (2, COURIER_CLAIM)]


async def test_override_ignores_the_transition_graph(settings):
    """Dispatched -> OnHold has no edge: a normal change is refused, the override applies with a generated note."""
    await seed(settings)
    normal = change(1034, "OnHold", role="manager")
    cmd = override([(1034, "OnHold")])
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [normal])
        await settle(settings, reader, {normal["command_id"]})
        await produce(settings, [cmd])
        summary = await wait_summary(settings, reader, cmd["command_id"])
        [refused] = [json.loads(r.value) for r in item_records(reader, normal["command_id"])]
        [applied] = [json.loads(r.value) for r in item_records(reader, cmd["command_id"])]

    assert (refused["type"], refused["reason"]) == ("OrderStatusChangeRejected", "transition_not_allowed")
    assert summary["results"] == [{"order_id": 1034, "status": "OnHold", "success": True, "reason": None, "error": None}]
    assert (applied["type"], applied["override"], applied["version"]) == ("OrderStatusChanged", True, 1)
    assert (applied["from_status"], applied["to_status"]) == (REF[DISPATCHED], REF[ON_HOLD])
    assert applied["notify"] is True  # default
    assert applied["note"]["text"] and "overridden" in applied["note"]["text"] and applied["note"]["is_public"] is False
    assert await order_rows(settings, [1034]) == {1034: (ON_HOLD, 1)}


async def test_redelivered_batch_applies_nothing_twice_and_emits_nothing_new(settings):
    """The same batch (same command_id) sent again after it was processed changes nothing and publishes nothing."""
    await seed(settings)
    cmd = override([(1029, "OnHold"), (1034, "CourierClaim"), (4242, "OnHold")])
    cid = cmd["command_id"]
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [cmd], key=cid, separately=True)
        await wait_summary(settings, reader, cid)
        first_events = [json.loads(r.value) for r in reader.records]
        orders_before = await fetch(settings, "SELECT order_id, status_id, version FROM orders ORDER BY order_id")
        history_before = await fetch(settings, "SELECT id FROM order_history ORDER BY id")
        assert len(first_events) == 4 and len(history_before) == 2

        # the redelivery, then a sentinel on the same partition: once the sentinel's event is out,
        # the worker has made the duplicate's (non-)outcome durable as well
        sentinel = change(1033, "Confirmed")
        await produce(settings, [cmd, sentinel], key=cid, separately=True)
        await settle(settings, reader, {sentinel["command_id"]})

    values = [json.loads(r.value) for r in reader.records]
    assert values[: len(first_events)] == first_events
    assert [v["command_id"] for v in values[len(first_events):]] == [sentinel["command_id"]]
    assert len(summaries(reader, cid)) == 1
    assert await fetch(settings, "SELECT order_id, status_id, version FROM orders WHERE order_id <> 1033 "
                                 "ORDER BY order_id") == [r for r in orders_before if r["order_id"] != 1033]
    assert await fetch(settings, "SELECT id FROM order_history WHERE order_id <> 1033 ORDER BY id") == history_before
    [processed] = await fetch(settings, "SELECT count(*) AS n FROM processed_commands WHERE command_id = $1", cid)
    assert processed["n"] == 1


# ---------------------------------------------------------------- R13: what can be overridden


async def test_transitions_view_lists_overrides_only_for_override_roles(settings):
    """`views.transitions` offers override targets to manager and system, and none to staff or clients."""
    await seed(settings)
    conn = await connect(url_of(settings))
    try:
        manager = await views.transitions(conn, 1034, Actor("m-1", "manager"))
        system = await views.transitions(conn, 1034, Actor("s-1", "system"))
        staff = await views.transitions(conn, 1034, Actor("st-1", "staff"))
        client = await views.transitions(conn, 1034, Actor("c-1", "client", "c-3"))
        stranger = await views.transitions(conn, 1034, Actor("c-9", "client", "c-1"))
        free = await views.transitions(conn, 1029, Actor("m-1", "manager"))
        paid = await views.transitions(conn, 1030, Actor("m-1", "manager"))
    finally:
        await conn.close()

    codes = lambda refs: [r["code"] for r in refs]  # noqa: E731
    assert manager["current"] == REF[DISPATCHED]
    # any can_override_to status of the type except the current one; no cancel: 1034 has goods out (R6)
    assert codes(manager["overrides"]) == ["OnHold", "CourierClaim", "Completed"]
    assert codes(manager["transitions"]) == ["CourierClaim", "Invoiced"]
    assert manager["can_override_status"] is True and manager["can_change_status"] is True
    assert system["overrides"] == manager["overrides"] and system["can_override_status"] is True
    for nobody in (staff, client):
        assert nobody["overrides"] == [] and nobody["can_override_status"] is False
    assert codes(staff["transitions"]) == ["CourierClaim", "Invoiced"]
    assert client["transitions"] == [] and client["can_change_status"] is False
    assert stranger is None  # R4: another client's order looks missing
    assert codes(free["overrides"]) == ["OnHold", "CourierClaim", "CancelledByClient", "Completed"]
    assert codes(paid["overrides"]) == ["OnHold", "CourierClaim", "Completed"]  # payments block the cancel


async def test_transitions_http_route_lists_overrides_by_role(settings):
    """GET /orders/{id}/status/transitions answers like the view: overrides for managers, none for staff, 404/400."""
    await seed(settings)
    pool = await create_pool(url_of(settings))
    runner = await start_http("127.0.0.1", 0, Progress(60), Metrics("t"), routes(PostgresReadViews(pool)))
    try:
        base = f"http://127.0.0.1:{bound_port(runner)}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(f"{base}/orders/1034/status/transitions", params={"role": "manager"}) as resp:
                assert resp.status == 200
                manager = await resp.json()
            async with http.get(f"{base}/orders/1034/status/transitions", params={"role": "staff"}) as resp:
                assert resp.status == 200
                staff = await resp.json()
            async with http.get(f"{base}/orders/1034/status/transitions",
                                params={"role": "client", "client_id": "c-1"}) as resp:
                assert resp.status == 404 and (await resp.json())["reason"] == "order_not_found"
            async with http.get(f"{base}/orders/1034/status/transitions", params={"role": "admin"}) as resp:
                assert resp.status == 400
        async with pool.acquire() as conn:
            assert manager == await views.transitions(conn, 1034, Actor("http", "manager"))
    finally:
        await runner.cleanup()
        await pool.close()

    assert [r["code"] for r in manager["overrides"]] == ["OnHold", "CourierClaim", "Completed"]
    assert manager["can_override_status"] is True
    assert staff["overrides"] == [] and staff["can_override_status"] is False
    assert [r["code"] for r in staff["transitions"]] == ["CourierClaim", "Invoiced"]
