"""The phases of bench/run.py for one configuration (stack x worker count): a fresh store, the
service and the fixed floor app started, seeding, warm-up, then the measured phases `--repeats`
times, interleaved; everything removed again at the end, also on failure."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from harness import ROOT, BenchError, Cleanup, PgDatabase, RedisPrefix, pg_exec
from procfs import machine_busy_sample
from server import FloorServer, Server, scan_log, tail
from wrk import Wrk, fmt_workers

PHASES = ("floor", "writes", "reads", "mix", "assess_floor", "assess", "state_floor", "state_update")
# Each phase is compared with the floor that sends bodies like its own.
FLOOR_OF = {"assess": "assess_floor", "assess_floor": "assess_floor",
            "state_update": "state_floor", "state_floor": "state_floor"}
# Phases measured against the fixed floor app (bench/floor_app.py), not against the service.
FLOORS = ("floor", "assess_floor", "state_floor")
STACK_LABEL = {"embedded": "embedded (SQLite file + in-process cache)",
               "postgres": "PostgreSQL + Redis"}


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


def say(name: str, msg: str) -> None:
    print(f"bench: [{name}] {msg}", file=sys.stderr)


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
    try:
        db, prefix = fresh_store(args, stack, name, env, cleanup)
        res.idle_cores_busy = machine_busy_sample()
        floor = FloorServer(outdir / f"{name}.floor.log")
        cleanup.push("floor server", floor.stop)
        floor.start(args.startup_timeout)
        server = Server(env, workers, db is not None, log_path)
        cleanup.push("server", server.stop)
        res.startup_s = server.start(args.startup_timeout)
        status, body = server.get_json("/health/service")
        res.health = {"status": status, "result": (body or {}).get("result")}
        res.memory.append(("started", server.memory()))
        say(name, f"server up on {server.url} in {res.startup_s:.1f} s (pids {server.pids()})")

        wrk = Wrk(wrk_exe, args.threads, args.connections, args.wrk_timeout, args.diag,
                  outdir / f"{name}.wrk.log", cleanup)
        common = [f"learners={args.learners}", f"contents={args.contents}"]
        res.seed = seed_views(args, wrk, server, name, log_path)
        res.memory.append(("seeded", server.memory()))
        # The batch the legacy content state update (state_update.lua) writes under.
        server.put_json("/v1/context/bench_batch", {"request": {"type": "batch", "collectionIds": ["bench_course"]}})
        measure(args, res, name, wrk, server, floor, common)
        if db is not None:
            try:
                res.db_rows = pg_exec(db.url, "SELECT count(*) FROM user_content_consumption", fetch=True)
            except Exception:  # noqa: BLE001 - informational only
                res.db_rows = None
            res.redis_keys = prefix.count()
    except BenchError as e:
        res.error = str(e)
        say(name, f"FAILED: {e}")
    finally:
        cleanup.run()
        res.log = scan_log(log_path)
    return res


def fresh_store(args, stack: str, name: str, env: dict, cleanup: Cleanup):
    """embedded: a SQLite file in a temp dir; postgres: a fresh database and Redis key prefix.
    Sets the server's environment; returns (database, prefix), both None on the embedded stack."""
    if stack == "embedded":
        tmp = tempfile.mkdtemp(prefix="viewer-bench-")
        cleanup.push(f"temp dir {tmp}", lambda: shutil.rmtree(tmp, ignore_errors=True))
        env["VIEWER_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp}/viewer.db"
        return None, None
    db = PgDatabase(args.pg_url)
    db.create()
    cleanup.push(f"database {db.name}", db.drop)
    prefix = RedisPrefix(args.redis_url)
    cleanup.push(f"redis keys {prefix.prefix}*", lambda: print(
        f"bench: deleted {prefix.delete()} redis keys under {prefix.prefix}", file=sys.stderr))
    env.update(VIEWER_DATABASE_URL=db.url, VIEWER_REDIS_URL=args.redis_url, VIEWER_REDIS_PREFIX=prefix.prefix)
    say(name, f"database {db.name}, redis prefix {prefix.prefix}")
    return db, prefix


def seed_views(args, wrk: Wrk, server: Server, name: str, log_path: Path) -> dict:
    """Every (learner, content) started, then every learner's scope read once (fills the cache);
    all must get 2xx."""
    common = [f"learners={args.learners}", f"contents={args.contents}"]
    seed = {}
    for mode in ("start", "read"):
        r = wrk.run("seed", server, 3600, common + [f"mode={mode}", f"threads={args.threads}"],
                    seed_mode=True, limit_s=args.seed_timeout)
        c = r.data["counters"]
        seed[mode] = {"requests": int(c["seed_total"]), "ok": int(c["seed_ok"]),
                      "bad": int(c["seed_bad"]), "bad_status": r.data["tables"].get("bad_status", {}),
                      "wall_s": r.wall_s, "rps": c["seed_ok"] / r.wall_s if r.wall_s else 0.0}
        say(name, f"seed {mode}: {int(c['seed_ok'])}/{int(c['seed_total'])} ok in {r.wall_s:.1f} s "
                  f"({seed[mode]['rps']:.0f}/s), non-2xx {int(c['seed_bad'])}")
        if c["seed_ok"] + c["seed_bad"] < c["seed_total"]:
            raise BenchError(f"seeding ({mode}) did not finish: {c}")
        if c["seed_bad"]:
            raise BenchError(f"seeding ({mode}) got non-2xx answers {r.data['tables']}; "
                             f"see {log_path}:\n{tail(log_path)}")
    return seed


def measure(args, res: ConfigResult, name: str, wrk: Wrk, server: Server, floor: FloorServer,
            common: list[str]) -> None:
    """Each phase once for `--warmup` s (not recorded), then `--repeats` rounds of all phases."""
    if args.warmup > 0:
        for phase in args.phases:
            wrk.run(phase, floor if phase in FLOORS else server, args.warmup,
                    common + [f"seed={args.seed + 999}", f"tag=w{secrets.token_hex(3)}"])
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
            say(name, f"{phase} #{rep + 1}: {r.rps:8.0f} req/s  p50 {r.lat_ms('p50'):6.2f} ms  "
                      f"p99 {r.lat_ms('p99'):6.2f} ms  server CPU {r.server_cpu_s / r.wall_s:.2f}"
                      f"{fmt_workers(r)}  PostgreSQL {r.services_cpu_s.get('PostgreSQL', 0) / r.wall_s:.2f}  "
                      f"wrk CPU {r.wrk_cpu_s / r.wall_s:.2f}{flag}")
