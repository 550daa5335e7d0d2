"""The suite's output: a table on stdout, bench/results/latest.json and bench/results/latest.png."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# issue 12's targets, drawn on the chart
TARGET_COMMANDS_PER_S = 15_000
TARGET_P99_MS_AT_1000 = 100


def chart_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True

COLUMNS = [  # header, width, value
    ("scenario", 14, lambda r: r["scenario"]),
    ("procs", 5, lambda r: r["processes"]),
    ("commands", 8, lambda r: f"{r['commands']:,}"),
    ("seconds", 7, lambda r: f"{r['elapsed_s']:.2f}"),
    ("cmd/s", 7, lambda r: f"{r['commands_per_s']:,}"),
    ("cpu wrk", 7, lambda r: f"{r['cpu_s']['workers']:.1f}"),
    ("cpu pg", 7, lambda r: f"{r['cpu_s']['postgres']:.1f}"),
    ("cpu brk", 7, lambda r: f"{r['cpu_s']['broker']:.1f}"),
    ("cpu bench", 9, lambda r: f"{r['cpu_s']['bench']:.1f}"),
    ("cpu other", 9, lambda r: f"{r['cpu_s'].get('other', 0):.1f}"),
    ("rss MiB", 7, lambda r: f"{r['peak_rss_mib']:.0f}"),
    ("p50 ms", 7, lambda r: r["latency_ms"].get("p50", "")),
    ("p95 ms", 7, lambda r: r["latency_ms"].get("p95", "")),
    ("p99 ms", 7, lambda r: r["latency_ms"].get("p99", "")),
    ("max ms", 7, lambda r: r["latency_ms"].get("max", "")),
    ("ok", 3, lambda r: "yes" if r["verified"] else "NO"),
]


def table(results: list[dict]) -> str:
    head = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w, _) in enumerate(COLUMNS))
    lines = [head, "-" * len(head)]
    for r in results:
        cells = [str(get(r)) for _, _, get in COLUMNS]
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, (_, w, _)) in enumerate(zip(cells, COLUMNS))))
    return "\n".join(lines)


def notes(summary: dict) -> str:
    m = summary["machine"]
    lines = [f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_gib']} GiB; worker {summary['git']}; "
             f"broker {summary['options'].get('broker', 'embedded')}"]
    if summary.get("worker_vs_naive") is not None:
        lines.append(f"worker / naive: {summary['worker_vs_naive']}x")
    lines.append("cpu: seconds of the worker process(es), Postgres (postmaster + backends), the broker, the bench "
                 "and everything else on the machine (other), during the measured window; "
                 "bench = producer and reader; latency: event CreateTime - command CreateTime (ms); in the as-fast-as-possible "
                 "scenarios it is mostly time queued behind the backlog")
    for r in summary["scenarios"]:
        if r.get("runs_commands_per_s"):
            steady = "rate" in r
            lines.append(f"{r['scenario']}: median of {len(r['runs_commands_per_s'])} runs "
                         f"(by {'p99' if steady else 'commands/s'}), commands/s "
                         + ", ".join(f"{v:,}" for v in r["runs_commands_per_s"])
                         + (", p99 ms " + ", ".join(str(v) for v in r["runs_p99_ms"]) if steady else ""))
        cpu = r["cpu_s"]
        if cpu.get("machine_total") and cpu.get("other", 0) > 0.1 * cpu["machine_total"]:
            lines.append(f"WARNING {r['scenario']}: {cpu['other']:.1f} of {cpu['machine_total']:.1f} CPU seconds went to "
                         "other processes on the machine: its figures are not clean")
        if not r["verified"]:
            lines.append(f"NOT VERIFIED {r['scenario']}: {json.dumps(r['checks'])}")
    return "\n".join(lines)


def write_json(summary: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")


def write_chart(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = summary["scenarios"]
    fast = [r for r in results if not r["scenario"].startswith("latency") and "commands_per_s" in r]
    steady = [r for r in results if r["scenario"].startswith("latency") and r["latency_ms"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    m = summary["machine"]
    fig.suptitle(f"orderstatus bench — {m['nproc']} CPUs, {m['cpu_model']} — {summary['started_at'][:16]}")

    names = [r["scenario"] for r in fast]
    values = [r["commands_per_s"] for r in fast]
    bars = left.bar(names, values, color=["#c44" if r["scenario"] == "naive" else "#47a" for r in fast])
    left.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=8)
    left.axhline(TARGET_COMMANDS_PER_S, color="#888", linestyle="--", linewidth=1)
    left.annotate(f"target {TARGET_COMMANDS_PER_S:,}/s", (0, TARGET_COMMANDS_PER_S), xytext=(2, 3),
                  textcoords="offset points", fontsize=8, color="#666")
    left.set_ylabel("commands/s (first command → last event)")
    ratio = summary.get("worker_vs_naive")
    left.set_title("throughput" + (f" (worker / naive: {ratio}x)" if ratio else ""))
    left.tick_params(axis="x", labelrotation=20)

    points = ["p50", "p95", "p99", "max"]
    width = 0.8 / max(1, len(steady))
    for i, r in enumerate(steady):
        xs = [j + i * width for j in range(len(points))]
        bars = right.bar(xs, [r["latency_ms"][p] for p in points], width, label=f"{r['rate']:,}/s")
        right.bar_label(bars, fmt="%.0f", fontsize=8)
    right.set_xticks([j + width * (len(steady) - 1) / 2 for j in range(len(points))], points)
    right.axhline(TARGET_P99_MS_AT_1000, color="#888", linestyle="--", linewidth=1,
                  label=f"target p99 at 1,000/s: {TARGET_P99_MS_AT_1000} ms")
    right.set_yscale("log")
    highest = max([r["latency_ms"]["max"] for r in steady] + [TARGET_P99_MS_AT_1000])
    right.set_ylim(top=highest * 5)  # room for the legend above the bars
    right.set_ylabel("ms (event CreateTime − command CreateTime)")
    right.set_title("latency at steady rates")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
