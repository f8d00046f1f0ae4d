"""What the benchmarks read from /proc: process trees, memory, CPU seconds of processes, of the
PostgreSQL and Redis servers and of the whole machine, and the machine itself."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
SERVICE_COMMS = {"postgres": "PostgreSQL", "redis-server": "Redis"}


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on


def _cpu_s(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def process_tree(root: int) -> list[int]:
    """root and all its descendants that are alive."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        f = _stat_fields(int(d))
        if f:
            children.setdefault(int(f[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if Path(f"/proc/{p}").exists():
            out.append(p)
            todo.extend(children.get(p, []))
    return out


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def role(pid: int, root: int) -> str:
    if pid == root:
        return "main"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "child"
    if "resource_tracker" in cmd:
        return "resource_tracker"
    if "spawn_main" in cmd or "multiprocessing" in cmd:
        return "worker"
    return "child"


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    out = {}
    for p in pids:
        f = _stat_fields(p)
        if f:
            out[p] = _cpu_s(f)
    return out


def service_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of every PostgreSQL and Redis process on the machine, by pid."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            comm = Path(f"/proc/{d}/comm").read_text().strip()
        except OSError:
            continue
        if comm in SERVICE_COMMS:
            f = _stat_fields(int(d))
            if f:
                out[int(d)] = (SERVICE_COMMS[comm], _cpu_s(f))
    return out


def service_cpu_delta(before: dict, after: dict) -> dict[str, float]:
    """Per service, CPU seconds used between two snapshots (processes that started in between
    count whole; ones that ended in between are missed)."""
    out = {name: 0.0 for name in SERVICE_COMMS.values()}
    for pid, (name, cpu) in after.items():
        prev = before.get(pid)
        out[name] += cpu - (prev[1] if prev and prev[0] == name else 0.0)
    return out


def pg_cpu_s() -> float:
    """CPU seconds of every PostgreSQL process on the machine (ones that end in between are missed)."""
    return sum(cpu for name, cpu in service_cpu().values() if name == "PostgreSQL")


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


def machine_busy_sample(seconds: float = 2.0) -> float:
    """Cores busy over a short sample (load from outside this benchmark)."""
    b0, t0 = machine_cpu()
    time.sleep(seconds)
    b1, t1 = machine_cpu()
    return (b1 - b0) / max(1, t1 - t0) * NCPU


class CpuMeter:
    """Process CPU (this script, all threads), PostgreSQL CPU and machine CPU over a span."""

    def __enter__(self):
        self.p0, self.g0, self.m0, self.t0 = time.process_time(), pg_cpu_s(), machine_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.proc = time.process_time() - self.p0
        self.pg = pg_cpu_s() - self.g0
        m1 = machine_cpu()
        self.machine = (m1[0] - self.m0[0]) / max(1, m1[1] - self.m0[1]) * NCPU
        return False


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine_info() -> dict:
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": cpu_model(), "memory": mem,
            "kernel": platform.release(), "python": platform.python_version()}
