"""The worker's HTTP surface (DESIGN §6.3): health, readiness, metrics and the read API."""

from __future__ import annotations

from service.devkit.embedded import free_port
from tests.helpers.commands import change
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
        assert (await get(port, "/orders/abc/history"))[0] == 400

        status, metrics = await get(port, "/metrics")
        assert status == 200
        assert 'orderstatus_messages_total{outcome="applied",service="worker"} 1.0' in metrics
