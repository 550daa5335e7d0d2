"""What is measured about processes and latencies, from /proc and plain arithmetic (Linux only).

CPU seconds are utime + stime of /proc/<pid>/stat. Postgres forks a backend per connection, so its
figure is the postmaster's own time, its live children's and its reaped children's (cutime +
cstime): a backend that exits between two snapshots moves from the second term into the third."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2:].split()  # after "pid (comm) "; comm may hold spaces


def cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """utime + stime (fields 14, 15; + cutime, cstime with `reaped_children`) of a live process."""
    f = _stat_fields(pid)  # f[0] is field 3 (state)
    ticks = int(f[11]) + int(f[12])
    if reaped_children:
        ticks += int(f[13]) + int(f[14])
    return ticks / TICK


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError):
                continue  # gone meanwhile
    return found


def tree_cpu_seconds(pid: int) -> float:
    """A process and its direct children, reaped ones included (Postgres: postmaster + backends)."""
    total = cpu_seconds(pid, reaped_children=True)
    for child in children(pid):
        try:
            total += cpu_seconds(child, reaped_children=True)
        except OSError:
            continue  # exited between the listing and the read: counted in the parent's cutime once reaped
    return total


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the resident set's high-water mark of a live process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmHWM for {pid}")


def machine_cpu() -> dict:
    """Machine-wide CPU seconds from /proc/stat's first line: busy (user, nice, system), steal, total."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (f + [0] * 8)[:8]
    return {"busy": (user + nice + system) / TICK, "steal": steal / TICK,
            "total": (user + nice + system + idle + iowait + irq + softirq + steal) / TICK}


@dataclass
class CpuProbe:
    """CPU seconds of the workers (each), Postgres (the tree), the broker and the bench process itself."""

    workers: list[int]
    postgres: int
    broker: int

    def snapshot(self) -> dict:
        return {
            "workers": [cpu_seconds(pid) for pid in self.workers],
            "postgres": tree_cpu_seconds(self.postgres),
            "broker": cpu_seconds(self.broker),
            "bench": cpu_seconds(os.getpid()),
            "machine": machine_cpu(),
        }

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        per_worker = [round(a - b, 2) for a, b in zip(after["workers"], before["workers"])]
        return {
            "workers": round(sum(per_worker), 2),
            "per_worker": per_worker,
            "postgres": round(after["postgres"] - before["postgres"], 2),
            "broker": round(after["broker"] - before["broker"], 2),
            "bench": round(after["bench"] - before["bench"], 2),
            # busy CPU of the whole machine that none of the above used: other work on the machine
            # (kernel time of loopback networking included); a large figure means a contaminated run
            "other": round(after["machine"]["busy"] - before["machine"]["busy"]
                           - sum(per_worker) - sum(after[k] - before[k] for k in ("postgres", "broker", "bench")), 2),
            "steal": round(after["machine"]["steal"] - before["machine"]["steal"], 2),
            "machine_total": round(after["machine"]["total"] - before["machine"]["total"], 2),
        }


def percentiles(values: list[float], points=(50, 95, 99)) -> dict:
    """Nearest-rank percentiles, plus the max; empty input gives an empty dict."""
    if not values:
        return {}
    ordered = sorted(values)
    result = {f"p{p}": ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] for p in points}
    result["max"] = ordered[-1]
    return {k: round(v, 1) for k, v in result.items()}


def machine() -> dict:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal:")), 0)
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_model": model, "mem_gib": round(mem_kib / 1024 ** 2, 1),
            "kernel": os.uname().release}
