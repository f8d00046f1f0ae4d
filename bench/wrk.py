"""Load generation: one wrk run of a bench/<script>.lua against a server, with the CPU seconds of
the server's processes, of wrk, of PostgreSQL and Redis and of the whole machine over it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness import BENCH, ROOT, BenchError, Cleanup
from procfs import cpu_by_pid, machine_cpu, role, service_cpu, service_cpu_delta
from server import Server


@dataclass
class WrkResult:
    script: str
    data: dict
    wrk_cpu_s: float
    server_cpu_s: float
    worker_cpu_s: list  # per uvicorn worker process (only with --workers > 1)
    services_cpu_s: dict  # PostgreSQL, Redis
    machine_busy: float  # fraction of all CPUs busy over the run
    wall_s: float
    returncode: int

    @property
    def rps(self) -> float:
        return self.data["rps"]

    def lat_ms(self, key: str) -> float:
        return self.data["latency_us"][key] / 1000.0

    @property
    def non2xx(self) -> int:
        return int(self.data["errors"]["status"])

    @property
    def timeouts(self) -> int:
        return int(self.data["errors"]["timeout"])

    @property
    def socket_errors(self) -> int:
        e = self.data["errors"]
        return int(e["connect"]) + int(e["read"]) + int(e["write"])

    @property
    def valid(self) -> bool:
        return self.non2xx == 0 and self.timeouts == 0


class Wrk:
    def __init__(self, exe: str, threads: int, connections: int, timeout_s: int, diag: bool,
                 log_path: Path, cleanup: Cleanup):
        self.exe, self.threads, self.connections = exe, threads, connections
        self.timeout_s, self.diag, self.log_path, self.cleanup = timeout_s, diag, log_path, cleanup

    def run(self, script: str, server: Server, duration_s: float, lua_args: list[str],
            seed_mode: bool = False, limit_s: float | None = None) -> WrkResult:
        cmd = [self.exe, f"-t{self.threads}", f"-c{self.connections}", f"-d{int(duration_s)}s",
               "--timeout", f"{self.timeout_s}s", "--latency", "-s", str(BENCH / f"{script}.lua"),
               server.url, "--", *lua_args]
        env = dict(os.environ)
        env["BENCH_DIAG"] = "1" if self.diag else "0"
        srv_pids = server.pids()
        cpu0, svc0, m0, t0 = cpu_by_pid(srv_pids), service_cpu(), machine_cpu(), time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, cwd=str(ROOT), start_new_session=True)

        def kill():
            if proc.returncode is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        self.cleanup.push(f"wrk {proc.pid}", kill)
        limit = limit_s if limit_s is not None else duration_s + self.timeout_s + 30
        timer = threading.Timer(limit, kill)
        timer.start()
        out, done_threads, data, interrupted = [], set(), None, False
        try:
            for line in proc.stdout:
                out.append(line)
                if line.startswith("BENCH_JSON "):
                    data = json.loads(line[len("BENCH_JSON "):])
                elif seed_mode and line.startswith("SEED_THREAD_DONE"):
                    done_threads.add(line.split()[1])
                    if len(done_threads) >= self.threads and not interrupted:
                        interrupted = True
                        proc.send_signal(signal.SIGINT)  # wrk prints its summary and exits
        except BaseException:
            kill()
            raise
        finally:
            timer.cancel()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        cpu1 = cpu_by_pid(srv_pids)
        svc = service_cpu_delta(svc0, service_cpu())
        deltas = {p: cpu1[p] - cpu0.get(p, 0.0) for p in cpu1}
        srv_cpu = sum(deltas.values())
        workers = sorted((deltas[p] for p in deltas if role(p, server.proc.pid) == "worker"), reverse=True)
        m1 = machine_cpu()
        busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
        with open(self.log_path, "a") as f:
            f.write(f"\n$ {' '.join(cmd)}\n{''.join(out)}")
        if data is None:
            raise BenchError(f"wrk {script} gave no BENCH_JSON line (exit {proc.returncode}):\n{''.join(out[-20:])}")
        return WrkResult(script, data, usage.ru_utime + usage.ru_stime, srv_cpu, workers, svc, busy, wall,
                         proc.returncode)


def fmt_workers(r: WrkResult) -> str:
    if not r.worker_cpu_s:
        return ""
    return " (" + "/".join(f"{w / r.wall_s:.2f}" for w in r.worker_cpu_s) + ")"
