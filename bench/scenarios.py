"""The scenarios of the suite. Each runs on fresh infrastructure, the same way:

1. start Postgres and the broker, seed the orders, create the topics (`bench.infra`);
2. start the process(es) under test as subprocesses and wait until their consumer group is Stable
   with all of them in it;
3. warm up: one command per partition, wait for its event (every member has then fetched, written
   and published once; pools and connections are open);
4. snapshot CPU, then produce the commands WHILE the workers run — as fast as possible (throughput,
   naive, scale-out) or at a steady rate (latency) — and wait until the events topic holds an event
   for every command; snapshot CPU and read the workers' peak RSS;
5. stop the workers (SIGTERM), read both topics back, match events to commands and verify.

Time is taken from Kafka record timestamps, all stamped on this machine's clock: a command's
CreateTime (set by the bench's producer at send) and its event's CreateTime, set by the worker's
producer when its relay hands the event to the client, a linger (5 ms) and one round trip before the
broker's acknowledgement. (The embedded broker ignores `message.timestamp.type=LogAppendTime`.)
Throughput is commands / (last event's timestamp − first command's timestamp)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from dataclasses import dataclass, field

from service.adapters.postgres.connection import connect

from bench import processes
from bench.infra import Infra, fresh_infra
from bench.measure import CpuProbe, peak_rss_mib, percentiles
from bench.topics import TopicFollower
from bench.verify import check_database, match, passed
from bench.workload import (
    bench_orders,
    dependent_commands,
    make_producer,
    produce_fast,
    produce_steady,
    produce_warmup,
    warmup_orders,
)


@dataclass
class Options:
    orders: int = 1_000
    commands: int = 50_000
    naive_commands: int = 50_000
    partitions: int = 6
    rates: tuple[int, ...] = (1_000, 5_000)
    latency_seconds: float = 15.0
    scale: tuple[int, ...] = (1, 2, 3)
    worker_env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 900.0  # per scenario, from the first command to the last event
    broker: str = "embedded"  # or "apache": one Apache Kafka node
    progress: bool = True
    console_orders: int = 1_000_000  # the console scenario (bench/console.py)
    console_letters: int = 100_000
    console_rounds: int = 60


def _say(opts: Options, text: str) -> None:
    if opts.progress:
        print(f"  [{time.strftime('%H:%M:%S')}] {text}", flush=True)


async def _wait_for(follower: TopicFollower, count: int, workers: list[processes.Process], timeout: float,
                    what: str, producing: asyncio.Task | None = None) -> None:
    deadline = time.monotonic() + timeout
    while follower.count < count:
        if producing is not None and producing.done():
            producing.result()  # a failed producer fails the scenario now
        for w in workers:
            w.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {follower.count} records after {timeout:.0f}s, expected {count}")
        await asyncio.sleep(0.02)


async def _run(opts: Options, name: str, argv: list[str], workers: int, commands, produce) -> dict:
    """The common skeleton of every scenario; `produce(producer, topic, commands)` sends the commands."""
    _say(opts, f"{name}: fresh infrastructure, {len(commands):,} commands, {workers} process(es)")
    async with fresh_infra(bench_orders(opts.orders) + warmup_orders(opts.partitions), opts.partitions,
                           opts.broker) as infra:
        return await _measure(opts, name, argv, workers, commands, produce, infra)


async def _measure(opts, name, argv, workers, commands, produce, infra: Infra) -> dict:
    s = infra.settings
    procs = processes.start(argv, workers, infra.env(opts.worker_env), infra.scratch)
    events = await TopicFollower(s.kafka_bootstrap_servers, s.events_topic, opts.partitions).start()
    producer = make_producer(s.kafka_bootstrap_servers)
    try:
        await producer.start()
        joined_s = await processes.wait_group_stable(s, s.worker_group, workers, procs)
        await produce_warmup(producer, s.commands_topic, opts.partitions)
        await _wait_for(events, opts.partitions, procs, 120, "warm-up")
        _say(opts, f"{name}: group joined in {joined_s:.1f}s, warmed up; producing")

        probe = CpuProbe([p.pid for p in procs], infra.postgres.process.pid, infra.broker_pid)
        before = probe.snapshot()
        with _collector_paused():
            producing = asyncio.create_task(produce(producer, s.commands_topic, commands))
            await _wait_for(events, opts.partitions + len(commands), procs, opts.timeout_s, name, producing)
        after = probe.snapshot()
        rss = [round(peak_rss_mib(p.pid), 1) for p in procs]
        produced = await producing
    finally:
        await producer.stop()
        codes = [await p.stop() for p in procs]
        await events.settle(quiet_s=0.5)
        await events.stop()
    _say(opts, f"{name}: reading the commands back and verifying")
    command_log = await TopicFollower(s.kafka_bootstrap_servers, s.commands_topic, opts.partitions).start()
    dlq = await TopicFollower(s.kafka_bootstrap_servers, s.dlq_topic, opts.partitions).start()
    try:
        await _wait_for(command_log, opts.partitions + len(commands), [], 120, "reading the commands back")
        await dlq.settle(quiet_s=0.5)
    finally:
        await command_log.stop()
        await dlq.stop()
    matched = match(commands, command_log.ordered(), events.ordered())
    conn = await connect(infra.postgres.url)
    try:
        checks = {**matched.checks, **await check_database(conn, commands)}
    finally:
        await conn.close()
    checks["dlq_records"] = dlq.count
    checks["exit_codes"] = codes

    elapsed = (matched.last_event_ms - matched.first_command_ms) / 1000
    result = {
        "scenario": name,
        "processes": workers,
        "commands": len(commands),
        "orders": opts.orders,
        "partitions": opts.partitions,
        "elapsed_s": round(elapsed, 2),
        "commands_per_s": round(len(commands) / elapsed),
        "produce_s": round(produced.seconds, 2),
        "produced_per_s": round(len(commands) / produced.seconds) if produced.seconds else None,
        "group_join_s": round(joined_s, 1),
        "cpu_s": CpuProbe.delta(before, after),
        "peak_rss_mib": max(rss),
        "peak_rss_mib_each": rss,
        "latency_ms": percentiles(matched.latencies_ms),
        "verified": passed(checks) and checks["dlq_records"] == 0,
        "checks": checks,
    }
    _say(opts, f"{name}: {result['commands_per_s']:,} commands/s, verified={result['verified']}")
    return result


@contextlib.contextmanager
def _collector_paused():
    """No cyclic garbage collection in the bench while it produces and reads: a full collection over the
    commands and records it holds paused it for up to 110 ms (measured), and a command appended to the
    producer before such a pause reaches the broker after it, stamped with the earlier time — the
    pause would count as the worker's latency."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def throughput(opts: Options, workers: int = 1, name: str = "throughput") -> dict:
    """≥ 50,000 dependent commands produced as fast as possible while `workers` worker processes run."""
    return await _run(opts, name, processes.WORKER, workers, dependent_commands(opts.orders, opts.commands),
                      produce_fast)


async def naive(opts: Options) -> dict:
    """The same command stream through the naive baseline (bench/naive.py)."""
    return await _run(opts, "naive", processes.NAIVE, 1, dependent_commands(opts.orders, opts.naive_commands),
                      produce_fast)


async def latency(opts: Options, rate: int) -> dict:
    """A steady `rate` commands/s for `latency_seconds`, one worker process; latency percentiles of every
    command (the worker's pool is open and warm from the start: no lead-in is left out)."""
    count = int(rate * opts.latency_seconds)

    async def steady(producer, topic, commands):
        return await produce_steady(producer, topic, commands, rate)

    result = await _run(opts, f"latency@{rate}", processes.WORKER, 1, dependent_commands(opts.orders, count), steady)
    result["rate"] = rate
    return result


SCENARIOS = ("throughput", "naive", "latency", "scale-out", "console")
