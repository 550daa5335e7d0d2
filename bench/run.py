"""`make bench`: the benchmark suite of issue 12, every scenario on fresh embedded Postgres and broker,
the worker(s) as real `orderstatus worker` subprocesses.

  throughput  50,000 dependent commands over 1,000 orders, produced while one worker runs
  naive       the same commands through the naive baseline (bench/naive.py: one transaction and one
              synchronous publish per command); the summary gives the ratio worker / naive
  latency     a steady 1,000 and 5,000 commands/s for 15 s each: p50, p95, p99, max of event
              timestamp − command timestamp
  scale-out   the throughput scenario with 1, 2 and 3 worker processes in one group
  console     `orderstatus console` over 1,000,000 orders, ~5,000,000 history rows and 100,000 dead letters
              (indexed by the console itself): p50/p95/max server time of every page, p95 <= 200 ms each

Prints a table, writes bench/results/latest.json and bench/results/latest.png."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path

from bench import console, report, scenarios
from bench.infra import PREFIX
from bench.measure import machine, machine_cpu
from bench.scenarios import SCENARIOS, Options
from testkit.paths import REPO


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 200 orders, 5,000 commands (naive 2,000), 4 s per rate")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, metavar="SCENARIO",
                        help=f"run only these ({', '.join(SCENARIOS)})")
    parser.add_argument("--orders", type=int, help="orders the commands go round (default 1,000)")
    parser.add_argument("--commands", type=int, help="commands of throughput and scale-out (default 50,000)")
    parser.add_argument("--naive-commands", type=int, help="commands of the naive baseline (default: --commands)")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of every topic (default 6)")
    parser.add_argument("--rates", type=int, nargs="+", default=[1_000, 5_000], help="steady rates, commands/s")
    parser.add_argument("--latency-seconds", type=float, help="seconds per steady rate (default 15)")
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 2, 3], help="worker processes of scale-out")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment of the workers, e.g. ORDERSTATUS_KAFKA_LINGER_MS=10 (repeatable)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each scenario N times on fresh infrastructure and report the median run")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="before each scenario, wait up to SECONDS for the machine to be idle (a shared machine)")
    parser.add_argument("--broker", choices=["embedded", "apache"], default="embedded",
                        help="embedded: the tansu stand-in (default); apache: one Apache Kafka node (Java 17+, Maven)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a scenario may take (default 900)")
    parser.add_argument("--console-orders", type=int,
                        help="orders of the console scenario (default 1,000,000; --quick 20,000)")
    parser.add_argument("--console-letters", type=int,
                        help="dead letters of the console scenario (default 100,000; --quick 5,000)")
    parser.add_argument("--console-rounds", type=int,
                        help="measured requests of each console page (default 60; --quick 15), after 5 warm-up rounds")
    parser.add_argument("--output", type=Path, default=None,
                        help="the JSON file; the chart goes beside it as .png (default bench/results/latest.json, "
                             "latest-apache.json with --broker apache, console.json with --only console)")
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> Options:
    quick = args.quick
    commands = args.commands or (5_000 if quick else 50_000)
    worker_env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith(PREFIX):
            raise SystemExit(f"--env {item!r}: expected {PREFIX}NAME=VALUE")
        worker_env[key] = value
    return Options(
        orders=args.orders or (200 if quick else 1_000),
        commands=commands,
        naive_commands=args.naive_commands or (2_000 if quick else commands),
        partitions=args.partitions,
        rates=tuple(args.rates),
        latency_seconds=args.latency_seconds or (4.0 if quick else 15.0),
        scale=tuple(args.scale),
        worker_env=worker_env,
        timeout_s=args.timeout,
        broker=args.broker,
        console_orders=args.console_orders or (20_000 if quick else 1_000_000),
        console_letters=args.console_letters or (5_000 if quick else 100_000),
        console_rounds=args.console_rounds or (15 if quick else 60),
    )


def idle_check(seconds: float = 2.0) -> float:
    """How many CPUs other work kept busy over `seconds` before the suite starts."""
    before = machine_cpu()
    time.sleep(seconds)
    return (machine_cpu()["busy"] - before["busy"]) / seconds


def git_revision() -> str:
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True).stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    return revision + ("+dirty" if git("status", "--porcelain", "--", "service") else "")


def median_run(runs: list[dict]) -> dict:
    """The run with the median commands/s (at a steady rate: the median p99); with several, every run's
    figures and verdict are kept."""
    steady = "rate" in runs[0]
    chosen = sorted(runs, key=lambda r: r["latency_ms"]["p99"] if steady else r["commands_per_s"])[len(runs) // 2]
    if len(runs) > 1:
        chosen["runs_commands_per_s"] = [r["commands_per_s"] for r in runs]
        chosen["runs_p99_ms"] = [r["latency_ms"]["p99"] for r in runs]
        chosen["verified"] = all(r["verified"] for r in runs)
    return chosen


async def wait_idle(budget: float, threshold: float = 0.25, window: float = 5.0) -> None:
    """Until other work keeps fewer than `threshold` CPUs busy over `window` seconds, at most `budget` s."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        before = machine_cpu()
        await asyncio.sleep(window)
        busy = (machine_cpu()["busy"] - before["busy"]) / window
        if busy < threshold:
            return
        print(f"  waiting for an idle machine ({busy:.2f} CPUs busy)", flush=True)
    print("  the machine stayed busy: measuring anyway", flush=True)


async def suite(opts: Options, selected: list[str], repeat: int = 1,
                idle_budget: float = 0) -> tuple[list[dict], list[str]]:
    results: list[dict] = []
    errors: list[str] = []

    async def one(scenario) -> dict:
        if idle_budget:
            await wait_idle(idle_budget)
        return await scenario()

    async def attempt(name: str, scenario) -> None:
        try:
            results.append(median_run([await one(scenario) for _ in range(repeat)]))
        except Exception as exc:
            traceback.print_exc()
            errors.append(f"{name}: {exc!r}")

    for name in selected:
        if name == "throughput":
            await attempt(name, lambda: scenarios.throughput(opts))
        elif name == "naive":
            await attempt(name, lambda: scenarios.naive(opts))
        elif name == "latency":
            for rate in opts.rates:
                await attempt(f"latency@{rate}", lambda rate=rate: scenarios.latency(opts, rate))
        elif name == "scale-out":
            for n in opts.scale:
                await attempt(f"scale-out×{n}", lambda n=n: scenarios.throughput(opts, n, f"scale-out×{n}"))
        elif name == "console":  # one run: its verdict is per page, not a figure to take the median of
            try:
                if idle_budget:
                    await wait_idle(idle_budget)
                results.append(await console.console(opts.console_orders, opts.console_letters, opts.partitions,
                                                     opts.console_rounds, 5, opts.timeout_s))
            except Exception as exc:
                traceback.print_exc()
                errors.append(f"{name}: {exc!r}")
    return results, errors


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM like Ctrl-C: the scenario in hand stops its workers, the broker and Postgres on the way out
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # platformdirs, finding the broker binary
    opts = options(args)
    selected = [s for s in SCENARIOS if not args.only or s in args.only]
    if args.output is None:  # the console scenario alone keeps its own file (latest.json holds the others')
        args.output = report.RESULTS / ("console.json" if selected == ["console"] else
                                        "latest-apache.json" if opts.broker == "apache" else "latest.json")
    ignored = sorted(k for k in os.environ if k.startswith(PREFIX))
    for key in ignored:  # the suite configures its own infrastructure; --env passes settings on
        del os.environ[key]
    if ignored:
        print(f"ignoring {', '.join(ignored)} (use --env to give the workers settings)")
    if not report.chart_available():  # fail now, not after minutes of measuring
        raise SystemExit("matplotlib is missing: pip install -e '.[bench]' (or 'matplotlib>=3.8,<4')")
    started = datetime.now(timezone.utc)
    print(f"orderstatus bench: {', '.join(selected)} — {opts.orders:,} orders, {opts.commands:,} commands, "
          f"{opts.partitions} partitions, {opts.broker} broker"
          + (f"; console: {opts.console_orders:,} orders, {opts.console_letters:,} dead letters, "
             f"{opts.console_rounds} requests a page" if "console" in selected else ""), flush=True)
    busy = idle_check()
    if busy > 0.3:
        print(f"WARNING: {busy:.1f} CPUs were busy before the suite started: other work skews the figures", flush=True)
    clock = time.monotonic()
    results, errors = asyncio.run(suite(opts, selected, args.repeat, args.wait_idle))

    throughput = next((r for r in results if r["scenario"] == "throughput"), None)
    naive = next((r for r in results if r["scenario"] == "naive"), None)
    summary = {
        "started_at": started.isoformat(timespec="seconds"),
        "suite_s": round(time.monotonic() - clock),
        "machine": {**machine(), "busy_cpus_before": round(busy, 2)},
        "git": git_revision(),
        "python": sys.version.split()[0],
        "options": {**{k: v for k, v in vars(opts).items() if k != "progress"}, "repeat": args.repeat, "wait_idle": args.wait_idle},
        "worker_vs_naive": round(throughput["commands_per_s"] / naive["commands_per_s"], 1)
        if throughput and naive else None,
        "scenarios": results,
        "errors": errors,
    }
    print()
    commands = [r for r in results if r["scenario"] != "console"]
    if commands:
        print(report.table(commands))
    for r in results:
        if r["scenario"] == "console":
            print(console.table(r))
    print(report.notes(summary))
    report.write_json(summary, args.output)
    if commands:  # the chart draws commands/s and latencies; the console's pages are in the table and the JSON
        chart = args.output.with_suffix(".png")
        report.write_chart(summary, chart)
        print(f"wrote {args.output} and {chart}")
    else:
        print(f"wrote {args.output}")
    for error in errors:
        print(f"FAILED {error}", file=sys.stderr)
    if errors or not all(r["verified"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
