#!/usr/bin/env python3
"""Benchmark viewer-service against a floor, on the embedded stack and on PostgreSQL + Redis.

    .venv/bin/python bench/run.py --quick     # short smoke run (~2-3 minutes)
    .venv/bin/python bench/run.py             # the recorded run (15 s phases, 3 repeats)

For each stack (embedded: SQLite file in a temp dir + in-process cache; postgres: a fresh
PostgreSQL database + Redis under a fresh key prefix) and each worker count, it starts
`viewer-service serve` as a subprocess, waits for /health, seeds learners x contents views
with wrk (bench/seed.lua), warms up, then runs the phases floor, writes, reads, mix, assess_floor, assess
(bench/<phase>.lua) `--repeats` times, interleaved, and reports medians and ratios to the floor
measured in the same server run. Everything it created (server processes, database, Redis keys,
temp dir) is removed at the end, also on Ctrl-C or failure.

Not part of CI: it is never collected by pytest. Needs only the standard library, plus asyncpg
and redis (both in the service's venv) for the postgres stack, and wrk (`apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness import BenchError, Cleanup, _sigterm, free_port, med, pg_exec, redis_delete_prefix

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PHASES = ("floor", "writes", "reads", "mix", "assess_floor", "assess", "state_floor", "state_update")
# Each phase is compared with the floor that sends bodies like its own.
FLOOR_OF = {"assess": "assess_floor", "assess_floor": "assess_floor",
            "state_update": "state_floor", "state_floor": "state_floor"}
# Phases measured against the fixed floor app (bench/floor_app.py), not against the service.
FLOORS = ("floor", "assess_floor", "state_floor")
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# Targets of issue 17, as same-run ratios to the fixed floor (1 worker): phase -> minimum ratio.
TARGETS = {"postgres": {"writes": 0.70, "reads": 1.0, "mix": 0.60, "assess": 0.35},
           "embedded": {"writes": 0.50, "reads": 1.0}}
TARGET_P99_X_FLOOR = 2.0  # PostgreSQL + Redis: p99 of writes, reads and mix within 2x the floor's


# --------------------------------------------------------------------------- cleanup

# --------------------------------------------------------------------------- /proc

def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from 3 (state) on


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
            out[p] = (int(f[11]) + int(f[12])) / CLK_TCK  # utime, stime
    return out


SERVICE_COMMS = {"postgres": "PostgreSQL", "redis-server": "Redis"}


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
                out[int(d)] = (SERVICE_COMMS[comm], (int(f[11]) + int(f[12])) / CLK_TCK)
    return out


def service_cpu_delta(before: dict, after: dict) -> dict[str, float]:
    """Per service, CPU seconds used between two snapshots (processes that started in between
    count whole; ones that ended in between are missed)."""
    out = {name: 0.0 for name in SERVICE_COMMS.values()}
    for pid, (name, cpu) in after.items():
        prev = before.get(pid)
        out[name] += cpu - (prev[1] if prev and prev[0] == name else 0.0)
    return out


def machine_busy_sample(seconds: float = 2.0) -> float:
    """Cores busy over a short sample (load from outside this benchmark)."""
    b0, t0 = machine_cpu()
    time.sleep(seconds)
    b1, t1 = machine_cpu()
    return (b1 - b0) / max(1, t1 - t0) * NCPU


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


# --------------------------------------------------------------------------- server

def service_command() -> list[str]:
    if os.environ.get("BENCH_SERVICE_CMD"):  # e.g. a stand-in server while testing this script
        return shlex.split(os.environ["BENCH_SERVICE_CMD"])
    exe = Path(sys.executable).parent / "viewer-service"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("viewer-service")
    if found:
        return [found]
    venv = ROOT / ".venv" / "bin" / "viewer-service"
    if venv.exists():
        return [str(venv)]
    raise BenchError("viewer-service not found; run with the project's venv: .venv/bin/python bench/run.py")


class Server:
    def __init__(self, env: dict[str, str], workers: int, migrate: bool, log_path: Path):
        self.env, self.workers, self.migrate, self.log_path = env, workers, migrate, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def command(self) -> list[str]:
        cmd = service_command() + ["serve", "--host", "127.0.0.1", "--port", str(self.port),
                                   "--workers", str(self.workers)]
        return cmd + ["--migrate"] if self.migrate else cmd

    def start(self, timeout: float) -> float:
        cmd = self.command()
        self._log = open(self.log_path, "ab")
        self._log.write(f"# {' '.join(cmd)}\n".encode())
        self._log.flush()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=str(ROOT), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"server exited with {self.proc.returncode} before /health answered; "
                                 f"log {self.log_path}:\n{tail(self.log_path)}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"/health did not answer within {timeout:.0f} s; log {self.log_path}:\n"
                                 f"{tail(self.log_path)}")
            time.sleep(0.2)
        startup = time.monotonic() - t0
        # Let uvicorn's other workers come up too before the first measurement.
        if self.workers > 1:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if sum(1 for p in self.pids() if role(p, self.proc.pid) == "worker") >= self.workers:
                    break
                time.sleep(0.2)
            time.sleep(1.0)
        return startup

    def get_json(self, path: str):
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def put_json(self, path: str, body: dict):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="PUT",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def memory(self) -> dict:
        pids = self.pids()
        procs = [{"pid": p, "role": role(p, self.proc.pid), "rss_kb": rss_kb(p)} for p in pids]
        return {"total_kb": sum(p["rss_kb"] for p in procs), "procs": procs}

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this script created
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("bench: server did not stop within 30 s, killing it", file=sys.stderr)
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        if self._log:
            self._log.close()
            self._log = None


class FloorServer(Server):
    """The fixed floor (bench/floor_app.py): FastAPI + uvicorn with its defaults, one process, no I/O.
    It shares nothing with the service, so the ratios do not move when the service's stack does."""

    def __init__(self, log_path: Path):
        super().__init__({k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}, 1, False, log_path)

    def command(self) -> list[str]:
        return [floor_python(), "-m", "uvicorn", "--app-dir", str(BENCH), "floor_app:app",
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]


def floor_python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def scan_log(path: Path) -> dict:
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = text.splitlines()
    pat = {
        "error": re.compile(r"\b(ERROR|CRITICAL)\b"),
        "warning": re.compile(r"\bWARNING\b"),
        "traceback": re.compile(r"^Traceback \(most recent call last\)"),
    }
    counts = {k: sum(1 for ln in lines if p.search(ln)) for k, p in pat.items()}
    notable = [ln for ln in lines if pat["error"].search(ln) or pat["warning"].search(ln)
               or pat["traceback"].search(ln)]
    return {"lines": len(lines), **counts, "first": notable[:8]}


# --------------------------------------------------------------------------- PostgreSQL / Redis

def _pg_url(base: str, dbname: str) -> str:
    u = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))


class PgDatabase:
    def __init__(self, admin_url: str):
        self.admin_url = admin_url
        self.name = f"viewer_bench_{secrets.token_hex(6)}"
        self.url = _pg_url(admin_url, self.name)
        self.created = False

    def create(self) -> None:
        pg_exec(self.admin_url, f'CREATE DATABASE "{self.name}"')
        self.created = True

    def drop(self) -> None:
        if self.created:
            pg_exec(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False


class RedisPrefix:
    def __init__(self, url: str):
        self.url = url
        self.prefix = f"bench-{secrets.token_hex(6)}:"

    def count(self) -> int:
        import redis

        r = redis.Redis.from_url(self.url)
        try:
            return sum(1 for _ in r.scan_iter(match=self.prefix + "*", count=1000))
        finally:
            r.close()

    def delete(self) -> int:
        return redis_delete_prefix(self.url, self.prefix)


# --------------------------------------------------------------------------- wrk

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


# --------------------------------------------------------------------------- one configuration

@dataclass
class ConfigResult:
    stack: str
    workers: int
    label: str
    startup_s: float = 0.0
    idle_cores_busy: float | None = None  # machine load before the server started
    seed: dict = field(default_factory=dict)
    runs: dict = field(default_factory=lambda: {p: [] for p in PHASES})
    memory: list = field(default_factory=list)  # (point, memory dict)
    health: dict | None = None
    log: dict = field(default_factory=dict)
    log_path: str = ""
    db_rows: int | None = None
    redis_keys: int | None = None
    error: str | None = None
    skipped: str | None = None


STACK_LABEL = {"embedded": "embedded (SQLite file + in-process cache)",
               "postgres": "PostgreSQL + Redis"}


def run_config(args, stack: str, workers: int, outdir: Path, wrk_exe: str,
               results: list[ConfigResult]) -> ConfigResult:
    res = ConfigResult(stack, workers, f"{STACK_LABEL[stack]}, {workers} worker{'s' if workers > 1 else ''}")
    results.append(res)  # so that an interrupted configuration still reports what it measured
    if stack == "embedded" and workers > 1:
        res.skipped = "the service refuses --workers > 1 without PostgreSQL and Redis"
        return res
    cleanup = Cleanup()
    name = f"{stack}-w{workers}"
    log_path = outdir / f"{name}.server.log"
    res.log_path = os.path.relpath(log_path, ROOT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    env.update(kv.split("=", 1) for kv in args.server_env)
    migrate = False
    db = prefix = None
    try:
        if stack == "embedded":
            tmp = tempfile.mkdtemp(prefix="viewer-bench-")
            cleanup.push(f"temp dir {tmp}", lambda: shutil.rmtree(tmp, ignore_errors=True))
            env["VIEWER_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp}/viewer.db"
        else:
            db = PgDatabase(args.pg_url)
            db.create()
            cleanup.push(f"database {db.name}", db.drop)
            prefix = RedisPrefix(args.redis_url)
            cleanup.push(f"redis keys {prefix.prefix}*", lambda: print(
                f"bench: deleted {prefix.delete()} redis keys under {prefix.prefix}", file=sys.stderr))
            env["VIEWER_DATABASE_URL"] = db.url
            env["VIEWER_REDIS_URL"] = args.redis_url
            env["VIEWER_REDIS_PREFIX"] = prefix.prefix
            migrate = True
            print(f"bench: [{name}] database {db.name}, redis prefix {prefix.prefix}", file=sys.stderr)

        res.idle_cores_busy = machine_busy_sample()
        floor = FloorServer(outdir / f"{name}.floor.log")
        cleanup.push("floor server", floor.stop)
        floor.start(args.startup_timeout)
        server = Server(env, workers, migrate, log_path)
        cleanup.push("server", server.stop)
        res.startup_s = server.start(args.startup_timeout)
        status, body = server.get_json("/health/service")
        res.health = {"status": status, "result": (body or {}).get("result")}
        res.memory.append(("started", server.memory()))
        print(f"bench: [{name}] server up on {server.url} in {res.startup_s:.1f} s "
              f"(pids {server.pids()})", file=sys.stderr)

        wrk = Wrk(wrk_exe, args.threads, args.connections, args.wrk_timeout, args.diag,
                  outdir / f"{name}.wrk.log", cleanup)
        common = [f"learners={args.learners}", f"contents={args.contents}"]

        # Seed: every (learner, content) started, then every learner's scope read once.
        for mode in ("start", "read"):
            r = wrk.run("seed", server, 3600, common + [f"mode={mode}", f"threads={args.threads}"],
                        seed_mode=True, limit_s=args.seed_timeout)
            c = r.data["counters"]
            res.seed[mode] = {"requests": int(c["seed_total"]), "ok": int(c["seed_ok"]),
                              "bad": int(c["seed_bad"]), "bad_status": r.data["tables"].get("bad_status", {}),
                              "wall_s": r.wall_s, "rps": c["seed_ok"] / r.wall_s if r.wall_s else 0.0}
            print(f"bench: [{name}] seed {mode}: {int(c['seed_ok'])}/{int(c['seed_total'])} ok in "
                  f"{r.wall_s:.1f} s ({res.seed[mode]['rps']:.0f}/s), non-2xx {int(c['seed_bad'])}",
                  file=sys.stderr)
            if c["seed_ok"] + c["seed_bad"] < c["seed_total"]:
                raise BenchError(f"seeding ({mode}) did not finish: {c}")
            if c["seed_bad"]:
                raise BenchError(f"seeding ({mode}) got non-2xx answers {r.data['tables']}; "
                                 f"see {log_path}:\n{tail(log_path)}")
        res.memory.append(("seeded", server.memory()))
        # The batch the legacy content state update (state_update.lua) writes under.
        server.put_json("/v1/context/bench_batch", {"request": {"type": "batch", "collectionIds": ["bench_course"]}})

        if args.warmup > 0:
            for phase in args.phases:
                wrk.run(phase, floor if phase in FLOORS else server, args.warmup, common + [f"seed={args.seed + 999}", f"tag=w{secrets.token_hex(3)}"])
            res.memory.append(("warmed up", server.memory()))

        for rep in range(args.repeats):
            for phase in args.phases:
                target = floor if phase in FLOORS else server
                if not target.alive():
                    raise BenchError(f"server died; log {target.log_path}:\n{tail(target.log_path)}")
                extra = [f"seed={args.seed * 100 + rep}", f"tag=r{rep}x{secrets.token_hex(3)}"]
                r = wrk.run(phase, target, args.duration, common + extra)
                res.runs[phase].append(r)
                res.memory.append((f"{phase} #{rep + 1}", server.memory()))
                flag = "" if r.valid else f"  INVALID: non-2xx {r.non2xx}, timeouts {r.timeouts}"
                print(f"bench: [{name}] {phase} #{rep + 1}: {r.rps:8.0f} req/s  p50 {r.lat_ms('p50'):6.2f} ms  "
                      f"p99 {r.lat_ms('p99'):6.2f} ms  server CPU {r.server_cpu_s / r.wall_s:.2f}"
                      f"{fmt_workers(r)}  PostgreSQL {r.services_cpu_s.get('PostgreSQL', 0) / r.wall_s:.2f}  "
                      f"wrk CPU {r.wrk_cpu_s / r.wall_s:.2f}{flag}", file=sys.stderr)

        if db is not None:
            try:
                res.db_rows = pg_exec(db.url, "SELECT count(*) FROM user_content_consumption", fetch=True)
            except Exception:  # noqa: BLE001 - informational only
                res.db_rows = None
            res.redis_keys = prefix.count()
    except BenchError as e:
        res.error = str(e)
        print(f"bench: [{name}] FAILED: {e}", file=sys.stderr)
    finally:
        cleanup.run()
        res.log = scan_log(log_path)
    return res


# --------------------------------------------------------------------------- report

def summarize(res: ConfigResult) -> dict:
    out = {}
    for phase in PHASES:
        runs = res.runs[phase]
        if not runs:
            continue
        out[phase] = {
            "rps": med([r.rps for r in runs]),
            "p50": med([r.lat_ms("p50") for r in runs]),
            "p99": med([r.lat_ms("p99") for r in runs]),
            "rps_all": [r.rps for r in runs],
            "p99_all": [r.lat_ms("p99") for r in runs],
            "non2xx": sum(r.non2xx for r in runs),
            "timeouts": sum(r.timeouts for r in runs),
            "socket_errors": sum(r.socket_errors for r in runs),
            "server_cpu": med([r.server_cpu_s / r.wall_s for r in runs]),
            "cpu_us_per_req": med([r.server_cpu_s / max(1, int(r.data["requests"])) * 1e6 for r in runs]),
            "worker_cpu": [med(xs) for xs in zip(*[[w / r.wall_s for w in r.worker_cpu_s] for r in runs])],
            "wrk_cpu": med([r.wrk_cpu_s / r.wall_s for r in runs]),
            "machine_busy": med([r.machine_busy for r in runs]),
            "pg_cpu": med([r.services_cpu_s.get("PostgreSQL", 0.0) / r.wall_s for r in runs]),
            "redis_cpu": med([r.services_cpu_s.get("Redis", 0.0) / r.wall_s for r in runs]),
            "other_cpu": med([max(0.0, r.machine_busy * NCPU - (r.server_cpu_s + r.wrk_cpu_s
                                                                  + sum(r.services_cpu_s.values())) / r.wall_s)
                              for r in runs]),
            "requests": sum(int(r.data["requests"]) for r in runs),
            "counters": _sum_counters(runs),
            "diag": _sum_tables(runs, "diag"),
        }
    return out


def _sum_counters(runs):
    agg = {}
    for r in runs:
        for k, v in r.data.get("counters", {}).items():
            agg[k] = agg.get(k, 0) + v
    return agg


def _sum_tables(runs, name):
    agg = {}
    for r in runs:
        for k, v in r.data.get("tables", {}).get(name, {}).items():
            agg[k] = agg.get(k, 0) + v
    return agg


def fmt_workers(r: WrkResult) -> str:
    if not r.worker_cpu_s:
        return ""
    return " (" + "/".join(f"{w / r.wall_s:.2f}" for w in r.worker_cpu_s) + ")"


def per_worker(p: dict) -> str:
    return " (" + " / ".join(f"{w:.2f}" for w in p["worker_cpu"]) + ")" if p.get("worker_cpu") else ""


def fmt(x, nd=0):
    if x is None or x != x:
        return "n/a"
    return f"{x:,.{nd}f}"


def machine_info() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "memory": mem,
            "kernel": platform.release(), "python": platform.python_version()}


def versions(args, wrk_exe: str, stacks) -> dict:
    v = {}
    try:
        out = subprocess.run([wrk_exe, "-v"], capture_output=True, text=True, timeout=5)
        v["wrk"] = (out.stdout + out.stderr).splitlines()[0].split(" [")[0]
    except Exception:  # noqa: BLE001
        v["wrk"] = "?"
    try:
        from importlib.metadata import version
        v["viewer-service"] = version("viewer-service")
        v["uvicorn"] = version("uvicorn")
    except Exception:  # noqa: BLE001
        pass
    if "postgres" in stacks:
        try:
            v["postgresql"] = pg_exec(args.pg_url, "SHOW server_version", fetch=True)
        except Exception as e:  # noqa: BLE001
            v["postgresql"] = f"unreachable ({e})"
        try:
            import redis
            r = redis.Redis.from_url(args.redis_url)
            v["redis"] = r.info("server").get("redis_version")
            r.close()
        except Exception as e:  # noqa: BLE001
            v["redis"] = f"unreachable ({e})"
    import sqlite3
    v["sqlite"] = sqlite3.sqlite_version
    return v


def ratio_line(name, value, target, higher_is_better=True, unit="×"):
    if value is None or value != value:
        return f"- {name}: not measured"
    ok = value >= target if higher_is_better else value <= target
    diff = value - target
    if unit == "×":
        rel = f"{value:.2f}× vs target {'≥' if higher_is_better else '≤'} {target:.2f}×"
        by = f"{abs(diff):.2f}× ({abs(diff) / target * 100:.0f} % of the target)"
    else:
        rel = f"{value:.1f} ms vs target ≤ {target:.0f} ms"
        by = f"{abs(diff):.1f} ms"
    return f"- {name}: {rel} → {'PASS' if ok else 'MISS'} ({'margin' if ok else 'short by'} {by})"


def report(args, started: dt.datetime, machine: dict, vers: dict, results: list[ConfigResult]) -> str:
    L = []
    L.append(f"# viewer-service benchmark, {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}")
    L.append("")
    L.append(f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory']} RAM, "
             f"Linux {machine['kernel']}, Python {machine['python']}.  ")
    L.append("Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".")
    L.append("")
    L.append(f"Parameters: `wrk -t{args.threads} -c{args.connections} -d{args.duration}s --timeout {args.wrk_timeout}s`, "
             f"{args.repeats} repeat(s) of floor → writes → reads → mix → assess_floor → assess (assess is compared with assess_floor: the same 10-question bodies to the no-I/O endpoint), interleaved, medians reported; "
             f"warm-up {args.warmup} s per phase; {args.learners:,} learners × {args.contents} contents "
             f"pre-seeded ({args.learners * args.contents:,} started views, then one read per learner); "
             f"mix 70 % update / 10 % start (new learners) / 10 % end / 10 % read; random seed {args.seed}"
             f"{'; BENCH_DIAG response hook ON' if args.diag else ''}.")
    L.append("")
    L.append("Ratios are to the fixed floor (`bench/floor_app.py`: FastAPI + uvicorn with its defaults, one "
             "process, the same bodies validated by a pydantic model, a constant envelope by orjson, no I/O) "
             "measured in the same run with the same client. Latencies are wrk's (closed loop: each connection waits "
             "for its answer), in ms.")
    target_cfg = {}
    for res in results:
        L.append("")
        L.append(f"## {res.label}")
        L.append("")
        if res.skipped:
            L.append(f"Skipped: {res.skipped}.")
            continue
        if res.error:
            L.append(f"**FAILED**: {res.error.splitlines()[0]}")
            L.append("")
        s = summarize(res)
        if res.workers == 1:
            target_cfg[res.stack] = s
        if res.seed:
            parts = []
            for mode, d in res.seed.items():
                parts.append(f"{d['ok']:,} {mode}s in {d['wall_s']:.1f} s ({d['rps']:,.0f}/s, non-2xx {d['bad']})")
            idle = (f"Machine load before the server started: {res.idle_cores_busy:.2f} cores busy. "
                    if res.idle_cores_busy is not None else "")
            L.append(f"{idle}Server start to /health: {res.startup_s:.1f} s. Seeding (one pass, not timed "
                     f"as a phase): " + "; ".join(parts) + ".")
            L.append("")
        if s:
            fl = s.get("floor")
            L.append("| phase | req/s | × floor | p50 ms | × floor | p99 ms | × floor | non-2xx | timeouts | server CPU | server CPU µs/req | wrk CPU | PostgreSQL CPU | Redis CPU | rest CPU | req/s per repeat |")
            L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
            for phase in PHASES:
                if phase not in s:
                    continue
                p = s[phase]
                fl = s.get(FLOOR_OF.get(phase, "floor"))

                def rat(key):
                    return f"{p[key] / fl[key]:.2f}" if fl and fl[key] else "n/a"

                L.append(f"| {phase} | {fmt(p['rps'])} | {rat('rps')} | {fmt(p['p50'], 2)} | {rat('p50')} | "
                         f"{fmt(p['p99'], 2)} | {rat('p99')} | {p['non2xx']} | {p['timeouts']} | "
                         f"{p['server_cpu']:.2f}{per_worker(p)} | {p['cpu_us_per_req']:.0f} | {p['wrk_cpu']:.2f} | "
                         f"{p['pg_cpu']:.2f} | {p['redis_cpu']:.2f} | {p['other_cpu']:.2f} | "
                         f"{', '.join(fmt(x) for x in p['rps_all'])} |")
            L.append("")
            L.append(f"CPU columns: cores used (CPU seconds / wall seconds, medians) of the {NCPU} by the server process "
                     "tree (in brackets: each uvicorn worker, busiest first), by wrk, by all PostgreSQL and all Redis "
                     "processes on the machine, and by the rest of the machine (other users; short-lived "
                     "processes such as autovacuum workers that ended during the phase).")
            mix = s.get("mix")
            if mix and mix["counters"]:
                c = mix["counters"]
                tot = sum(c.values()) or 1
                L.append("")
                L.append("Mix as sent: " + ", ".join(
                    f"{k[2:]} {v / tot * 100:.1f} %" for k, v in sorted(c.items())) + f" of {tot:,.0f} requests.")
            if any(p["diag"] for p in s.values()):
                L.append("")
                L.append("Responses by endpoint and status (BENCH_DIAG): " + "; ".join(
                    f"{ph}: " + ", ".join(f"{k} ×{v}" for k, v in sorted(p['diag'].items()))
                    for ph, p in s.items() if p["diag"]))
            bad = [ph for ph, p in s.items() if p["non2xx"] or p["timeouts"]]
            if bad:
                L.append("")
                L.append(f"**INVALID**: non-2xx answers or timeouts in {', '.join(bad)}.")
        if res.memory:
            L.append("")
            L.append("Server memory (VmRSS of the process tree):")
            L.append("")
            L.append("| point | total MB | per process MB |")
            L.append("|---|---:|---|")
            base = res.memory[0][1]["total_kb"]
            for point, m in res.memory:
                per = ", ".join(f"{p['role']} {p['rss_kb'] / 1024:.0f}" for p in m["procs"])
                L.append(f"| {point} | {m['total_kb'] / 1024:.0f} (+{(m['total_kb'] - base) / 1024:.0f}) | {per} |")
        extras = []
        if res.db_rows is not None:
            extras.append(f"rows in the database at the end: {res.db_rows:,}")
        if res.redis_keys is not None:
            extras.append(f"Redis keys under the run's prefix: {res.redis_keys:,}")
        if res.health:
            h = res.health.get("result") or {}
            extras.append(f"/health/service: {res.health['status']} "
                          + ", ".join(f"{x.get('name')} {'healthy' if x.get('healthy') else 'UNHEALTHY'}"
                                      f"{' (' + str(x.get('type')) + ')' if x.get('type') else ''}"
                                      for x in h.get("services", [])))
        lg = res.log
        if lg:
            extras.append(f"server log `{res.log_path}`: {lg['lines']} lines, {lg['error']} ERROR, "
                          f"{lg['warning']} WARNING, {lg['traceback']} tracebacks")
        if extras:
            L.append("")
            L.append("; ".join(extras) + ".")
        if lg and lg.get("first"):
            L.append("")
            L.append("```")
            L.extend(x[:300] for x in lg["first"])
            L.append("```")

    L.append("")
    L.append("## Targets (issue 17; 1 worker, ratios to the fixed floor of the same run)")
    L.append("")
    for stack in TARGETS:
        if stack in target_cfg:
            L.extend(target_lines(stack, target_cfg[stack]))
    L.append("")
    return "\n".join(L)


def target_lines(stack: str, s: dict | None) -> list[str]:
    if not s or "floor" not in s:
        return [f"- {STACK_LABEL[stack]}: not measured (the stack with 1 worker did not run its floor)"]
    out = []
    for ph, target in TARGETS[stack].items():
        fl = s.get(FLOOR_OF.get(ph, "floor"))
        value = s[ph]["rps"] / fl["rps"] if ph in s and fl and fl["rps"] else None
        out.append(ratio_line(f"{stack} {ph} req/s ≥ {target:.2f}× its floor", value, target))
    if stack == "postgres":
        for ph in ("writes", "reads", "mix"):
            value = s[ph]["p99"] / s["floor"]["p99"] if ph in s and s["floor"]["p99"] else None
            out.append(ratio_line(f"{stack} {ph} p99 ≤ {TARGET_P99_X_FLOOR:.0f}× the floor's p99", value,
                                  TARGET_P99_X_FLOOR, higher_is_better=False))
    bad = [ph for ph, p in s.items() if p["non2xx"] or p["timeouts"]]
    if bad:
        out.append(f"- run INVALID for {', '.join(bad)}: non-2xx answers or timeouts")
    return out


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="short run: 5 s phases, 1 repeat, 2,000 learners, 1 s warm-up (explicit flags win)")
    p.add_argument("--stacks", default="embedded,postgres", help="comma list of embedded, postgres")
    p.add_argument("--workers", default="1", help="comma list of worker counts, e.g. 1,2 (>1: postgres only)")
    p.add_argument("--phases", default=",".join(PHASES), help="comma list of phases to run, in this order (all)")
    p.add_argument("--threads", "-t", type=int, default=1, help="wrk threads")
    p.add_argument("--connections", "-c", type=int, default=64, help="wrk connections")
    p.add_argument("--duration", "-d", type=int, default=None, help="seconds per measured phase (15)")
    p.add_argument("--repeats", type=int, default=None, help="repeats of every phase, interleaved (3)")
    p.add_argument("--warmup", type=int, default=None, help="seconds of each phase before measuring (2)")
    p.add_argument("--learners", type=int, default=None, help="learners pre-seeded (20000)")
    p.add_argument("--contents", type=int, default=5, help="contents per learner in the collection")
    p.add_argument("--seed", type=int, default=1, help="random seed for the request streams")
    p.add_argument("--wrk-timeout", type=int, default=5, help="wrk request timeout, seconds")
    p.add_argument("--seed-timeout", type=int, default=1200, help="limit for each seeding pass, seconds")
    p.add_argument("--startup-timeout", type=int, default=90, help="limit for /health to answer, seconds")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                   help="PostgreSQL maintenance database URL (a fresh database is created next to it)")
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--diag", action="store_true",
                   help="count every response by endpoint and status in Lua (costs client CPU; for debugging)")
    p.add_argument("--out", default=str(RESULTS), help="directory for the report, JSON and logs")
    p.add_argument("--server-env", action="append", default=[], metavar="VIEWER_X=VALUE",
                   help="an environment variable for the server (repeatable), e.g. VIEWER_METRICS=false")
    a = p.parse_args(argv)
    for kv in a.server_env:
        if "=" not in kv:
            p.error(f"--server-env needs NAME=VALUE, got {kv!r}")
    q = a.quick
    a.duration = a.duration if a.duration is not None else (5 if q else 15)
    a.repeats = a.repeats if a.repeats is not None else (1 if q else 3)
    a.warmup = a.warmup if a.warmup is not None else (1 if q else 2)
    a.learners = a.learners if a.learners is not None else (2000 if q else 20000)
    a.stacks = [s.strip() for s in a.stacks.split(",") if s.strip()]
    a.phases = [s.strip() for s in a.phases.split(",") if s.strip()]
    if set(a.phases) - set(PHASES):
        p.error(f"unknown phase in {a.phases} ({', '.join(PHASES)})")
    a.workers = [int(w) for w in a.workers.split(",") if w.strip()]
    for s in a.stacks:
        if s not in STACK_LABEL:
            p.error(f"unknown stack {s!r} (embedded, postgres)")
    if a.connections < a.threads:
        p.error("--connections must be at least --threads")
    return a


def to_json(args, started, machine, vers, results):
    def run_d(r: WrkResult):
        return {"data": r.data, "wrk_cpu_s": r.wrk_cpu_s, "server_cpu_s": r.server_cpu_s,
                "worker_cpu_s": r.worker_cpu_s, "services_cpu_s": r.services_cpu_s,
                "machine_busy": r.machine_busy, "wall_s": r.wall_s}

    return {
        "started": started.isoformat(), "machine": machine, "versions": vers,
        "args": {k: v for k, v in vars(args).items()},
        "configs": [{
            "stack": r.stack, "workers": r.workers, "label": r.label, "startup_s": r.startup_s,
            "seed": r.seed, "idle_cores_busy": r.idle_cores_busy, "error": r.error, "skipped": r.skipped, "health": r.health,
            "log": r.log, "db_rows": r.db_rows, "redis_keys": r.redis_keys,
            "memory": [{"point": pt, **m} for pt, m in r.memory],
            "runs": {ph: [run_d(x) for x in xs] for ph, xs in r.runs.items()},
            "summary": summarize(r),
        } for r in results],
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    wrk_exe = shutil.which("wrk")
    if not wrk_exe:
        print("bench: wrk not found. Install it: apt-get install wrk", file=sys.stderr)
        return 2
    if "postgres" in args.stacks:
        try:
            import asyncpg  # noqa: F401
            import redis  # noqa: F401
        except ImportError as e:
            print(f"bench: the postgres stack needs asyncpg and redis ({e}); run with .venv/bin/python",
                  file=sys.stderr)
            return 2
    # Ctrl-C raises KeyboardInterrupt even when started from a non-interactive shell with `&`
    # (which ignores SIGINT), so that cleanup always runs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    started = dt.datetime.now().astimezone()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    out_root = Path(args.out)
    outdir = out_root / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    vers = versions(args, wrk_exe, args.stacks)
    results: list[ConfigResult] = []
    interrupted = False
    try:
        for stack in args.stacks:
            for w in args.workers:
                run_config(args, stack, w, outdir, wrk_exe, results)
    except KeyboardInterrupt as e:
        interrupted = True
        print(f"bench: interrupted ({str(e) or 'Ctrl-C'}); cleaned up", file=sys.stderr)
        if os.environ.get("BENCH_DEBUG"):
            import traceback
            traceback.print_exc()
    text = report(args, started, machine, vers, results)
    if interrupted:
        text += "\n**Interrupted before the end: partial results.**\n"
    md = out_root / f"{stamp}.md"
    md.write_text(text)
    (out_root / f"{stamp}.json").write_text(json.dumps(to_json(args, started, machine, vers, results), indent=1,
                                                       default=str))
    print(text)
    print(f"bench: report {md}, raw data {out_root / (stamp + '.json')}, logs {outdir}/", file=sys.stderr)
    failed = interrupted or any(r.error for r in results) or any(
        p["non2xx"] or p["timeouts"] for r in results for p in summarize(r).values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
