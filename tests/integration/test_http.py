"""The worker's HTTP surface (DESIGN §6.3): health, readiness, metrics and the read API."""

from __future__ import annotations

from service.devkit.embedded import free_port
from tests.helpers.commands import change, override
from tests.helpers.database import seed
from tests.helpers.probes import get, wait_readiness
from tests.helpers.producing import produce
from tests.helpers.services import running_worker
from tests.helpers.topics import TopicReader, events_for


async def test_health_readiness_metrics_and_read_api(settings):
    """/healthz, /readyz, /metrics, /statuses, transitions and history answer from the running worker."""
    await seed(settings)
    port = free_port()
    settings = settings.model_copy(update={"http_port": port})
    command = change(1033, "Confirmed")
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        assert await get(port, "/healthz") == (200, {"status": "ok"})
        ready = await wait_readiness(port, True, 30)
        assert ready["database"] is True and ready["kafka"] is True
        await produce(settings, [command])
        await events_for(reader, {command["command_id"]})

        status, statuses = await get(port, "/statuses?order_type=TR")
        assert status == 200 and {s["code"] for s in statuses} >= {"Requested", "Quoted", "OnHold"}
        assert all("TR" in s["order_types"] for s in statuses)

        status, found = await get(port, "/orders/3001/status/transitions?role=client&client_id=c-4")
        assert status == 200
        assert found["current"]["code"] == "Quoted"
        assert {s["code"] for s in found["transitions"]} == {"QuoteAccepted", "QuoteRejected"}
        assert found["can_change_status"] is True and found["can_override_status"] is False

        status, found = await get(port, "/orders/3001/status/transitions?role=manager")
        assert {s["code"] for s in found["overrides"]} == {"OnHold", "Closed", "TranslationCancelled"}
        assert found["can_override_status"] is True

        assert (await get(port, "/orders/3001/status/transitions?role=client&client_id=c-9"))[0] == 404
        assert (await get(port, "/orders/3001/status/transitions?role=boss"))[0] == 400

        status, history = await get(port, "/orders/1033/history")
        assert status == 200 and history["version"] == 1
        assert history["history"][0]["to_status"]["code"] == "Confirmed"
        assert (await get(port, "/orders/424242/history"))[0] == 404
        assert (await get(port, "/orders/abc/history"))[0] == 422

        status, metrics = await get(port, "/metrics")
        assert status == 200
        assert 'orderstatus_messages_total{outcome="applied",service="worker"} 1.0' in metrics


async def test_read_api_order_ids_are_held_to_their_column(settings):
    """An order id that is not 1..2^63-1 in ASCII digits (-1, 1_0, Unicode digits, 2^63) is a 422 on every route."""
    await seed(settings)
    port = free_port()
    settings = settings.model_copy(update={"http_port": port})
    async with running_worker(settings):
        await wait_readiness(port, True, 30)
        for bad in ("-1", "1_0", "%D9%A1%D9%A2", "%EF%BC%91", "9223372036854775808", "99999999999999999999999", "0"):
            for path in (f"/orders/{bad}/history", f"/orders/{bad}/status/transitions?role=manager"):
                status, body = await get(port, path)
                assert status == 422 and body["reason"] == "invalid_request", (path, status, body)
        assert (await get(port, "/orders/9223372036854775807/history"))[0] == 404


async def test_history_is_paged_and_private_notes_need_a_token_or_a_dev_setup(settings):
    """?limit and ?cursor page the history (next_cursor until the end); without a token private notes are hidden
    unless ORDERSTATUS_READ_API_OPEN says it is a dev setup."""
    await seed(settings)
    port = free_port()
    settings = settings.model_copy(update={"http_port": port})
    commands = [override([(3001, status)], note={"text": f"note {n}", "is_public": n == 1})
                for n, status in enumerate(("OnHold", "TranslationCancelled", "Closed"))]
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await wait_readiness(port, True, 30)
        await produce(settings, commands)
        await events_for(reader, {c["command_id"] for c in commands})
        pages, cursor = [], "0"
        while cursor is not None:
            status, page = await get(port, f"/orders/3001/history?limit=2&cursor={cursor}")
            assert status == 200 and len(page["history"]) <= 2
            pages.append(page["history"])
            cursor = page["next_cursor"]
        entries = [entry for page in pages for entry in page]
        assert len(pages) == 2 and [e["version"] for e in entries] == list(range(1, len(entries) + 1))
        assert [e["note"] for e in entries if e["note"] is not None] == [
            {"text": "note 1", "is_public": True, "file_id": None}]
        assert all(set(e["actor"]) == {"role"} for e in entries)
        for bad in ("limit=0", "limit=1001", "limit=x", "cursor=-1", "cursor=%D9%A1"):
            assert (await get(port, f"/orders/3001/history?{bad}"))[0] == 422
    open_port = free_port()
    dev = settings.model_copy(update={"http_port": open_port, "read_api_open": True})
    async with running_worker(dev):
        await wait_readiness(open_port, True, 30)
        status, found = await get(open_port, "/orders/3001/history")
        assert status == 200 and sorted(e["note"]["text"] for e in found["history"]) == ["note 0", "note 1", "note 2"]
        assert found["next_cursor"] is None
