"""The worker's HTTP surface (DESIGN §6.3): health, readiness, metrics and the read API."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from service.embedded import free_port
from tests.support import TopicReader, change, events_for, produce, running_worker, seed


async def _get(port: int, path: str):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}") as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body


async def _wait_ready(port: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status, body = await _get(port, "/readyz")
        if status == 200:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"never ready: {body}")
        await asyncio.sleep(0.2)


async def test_health_readiness_metrics_and_read_api(settings):
    """/healthz, /readyz, /metrics, /statuses, transitions and history answer from the running worker."""
    await seed(settings)
    port = free_port()
    settings = settings.model_copy(update={"http_port": port})
    command = change(1033, "Confirmed")
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        assert await _get(port, "/healthz") == (200, {"status": "ok"})
        ready = await _wait_ready(port)
        assert ready["database"] is True and ready["kafka"] is True
        await produce(settings, [command])
        await events_for(reader, {command["command_id"]})

        status, statuses = await _get(port, "/statuses?order_type=TR")
        assert status == 200 and {s["code"] for s in statuses} >= {"Requested", "Quoted", "OnHold"}
        assert all("TR" in s["order_types"] for s in statuses)

        status, found = await _get(port, "/orders/3001/status/transitions?role=client&client_id=c-4")
        assert status == 200
        assert found["current"]["code"] == "Quoted"
        assert {s["code"] for s in found["transitions"]} == {"QuoteAccepted", "QuoteRejected"}
        assert found["can_change_status"] is True and found["can_override_status"] is False

        status, found = await _get(port, "/orders/3001/status/transitions?role=manager")
        assert {s["code"] for s in found["overrides"]} == {"OnHold", "Closed", "TranslationCancelled"}
        assert found["can_override_status"] is True

        assert (await _get(port, "/orders/3001/status/transitions?role=client&client_id=c-9"))[0] == 404
        assert (await _get(port, "/orders/3001/status/transitions?role=boss"))[0] == 400

        status, history = await _get(port, "/orders/1033/history")
        assert status == 200 and history["version"] == 1
        assert history["history"][0]["to_status"]["code"] == "Confirmed"
        assert (await _get(port, "/orders/424242/history"))[0] == 404
        assert (await _get(port, "/orders/abc/history"))[0] == 400

        status, metrics = await _get(port, "/metrics")
        assert status == 200
        assert 'orderstatus_messages_total{outcome="applied",service="worker"} 1.0' in metrics
