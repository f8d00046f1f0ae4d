"""The report of bench/run.py: medians of the repeats, ratios to the floor of the same run, the
targets, as Markdown; and the raw numbers as JSON."""

from __future__ import annotations

import datetime as dt
import subprocess

from harness import fmt, med, pg_exec
from phases import FLOOR_OF, PHASES, STACK_LABEL, ConfigResult
from procfs import NCPU
from wrk import WrkResult

# Targets of issue 17, as same-run ratios to the fixed floor (1 worker): phase -> minimum ratio.
TARGETS = {"postgres": {"writes": 0.70, "reads": 1.0, "mix": 0.60, "assess": 0.35},
           "embedded": {"writes": 0.50, "reads": 1.0}}
TARGET_P99_X_FLOOR = 2.0  # PostgreSQL + Redis: p99 of writes, reads and mix within 2x the floor's


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


def per_worker(p: dict) -> str:
    return " (" + " / ".join(f"{w:.2f}" for w in p["worker_cpu"]) + ")" if p.get("worker_cpu") else ""


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
    L = header(args, started, machine, vers)
    target_cfg = {}
    for res in results:
        L += ["", f"## {res.label}", ""]
        if res.skipped:
            L.append(f"Skipped: {res.skipped}.")
            continue
        if res.error:
            L += [f"**FAILED**: {res.error.splitlines()[0]}", ""]
        s = summarize(res)
        if res.workers == 1:
            target_cfg[res.stack] = s
        if res.seed:
            L += [seed_line(res), ""]
        if s:
            L += phase_table(s)
        if res.memory:
            L += memory_table(res.memory)
        L += server_notes(res)
    L += ["", "## Targets (issue 17; 1 worker, ratios to the fixed floor of the same run)", ""]
    for stack in TARGETS:
        if stack in target_cfg:
            L.extend(target_lines(stack, target_cfg[stack]))
    L.append("")
    return "\n".join(L)


def header(args, started: dt.datetime, machine: dict, vers: dict) -> list[str]:
    return [
        f"# viewer-service benchmark, {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory']} RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}.  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".",
        "",
        f"Parameters: `wrk -t{args.threads} -c{args.connections} -d{args.duration}s --timeout {args.wrk_timeout}s`, "
        f"{args.repeats} repeat(s) of floor → writes → reads → mix → assess_floor → assess (assess is compared with "
        "assess_floor: the same 10-question bodies to the no-I/O endpoint), interleaved, medians reported; "
        f"warm-up {args.warmup} s per phase; {args.learners:,} learners × {args.contents} contents "
        f"pre-seeded ({args.learners * args.contents:,} started views, then one read per learner); "
        f"mix 70 % update / 10 % start (new learners) / 10 % end / 10 % read; random seed {args.seed}"
        f"{'; BENCH_DIAG response hook ON' if args.diag else ''}.",
        "",
        "Ratios are to the fixed floor (`bench/floor_app.py`: FastAPI + uvicorn with its defaults, one "
        "process, the same bodies validated by a pydantic model, a constant envelope by orjson, no I/O) "
        "measured in the same run with the same client. Latencies are wrk's (closed loop: each connection waits "
        "for its answer), in ms.",
    ]


def seed_line(res: ConfigResult) -> str:
    parts = [f"{d['ok']:,} {mode}s in {d['wall_s']:.1f} s ({d['rps']:,.0f}/s, non-2xx {d['bad']})"
             for mode, d in res.seed.items()]
    idle = (f"Machine load before the server started: {res.idle_cores_busy:.2f} cores busy. "
            if res.idle_cores_busy is not None else "")
    return (f"{idle}Server start to /health: {res.startup_s:.1f} s. Seeding (one pass, not timed "
            f"as a phase): " + "; ".join(parts) + ".")


def phase_table(s: dict) -> list[str]:
    L = ["| phase | req/s | × floor | p50 ms | × floor | p99 ms | × floor | non-2xx | timeouts | server CPU | "
         "server CPU µs/req | wrk CPU | PostgreSQL CPU | Redis CPU | rest CPU | req/s per repeat |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
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
    L += ["", f"CPU columns: cores used (CPU seconds / wall seconds, medians) of the {NCPU} by the server process "
              "tree (in brackets: each uvicorn worker, busiest first), by wrk, by all PostgreSQL and all Redis "
              "processes on the machine, and by the rest of the machine (other users; short-lived "
              "processes such as autovacuum workers that ended during the phase)."]
    mix = s.get("mix")
    if mix and mix["counters"]:
        c = mix["counters"]
        tot = sum(c.values()) or 1
        L += ["", "Mix as sent: " + ", ".join(
            f"{k[2:]} {v / tot * 100:.1f} %" for k, v in sorted(c.items())) + f" of {tot:,.0f} requests."]
    if any(p["diag"] for p in s.values()):
        L += ["", "Responses by endpoint and status (BENCH_DIAG): " + "; ".join(
            f"{ph}: " + ", ".join(f"{k} ×{v}" for k, v in sorted(p['diag'].items()))
            for ph, p in s.items() if p["diag"])]
    bad = [ph for ph, p in s.items() if p["non2xx"] or p["timeouts"]]
    if bad:
        L += ["", f"**INVALID**: non-2xx answers or timeouts in {', '.join(bad)}."]
    return L


def memory_table(memory: list) -> list[str]:
    L = ["", "Server memory (VmRSS of the process tree):", "", "| point | total MB | per process MB |", "|---|---:|---|"]
    base = memory[0][1]["total_kb"]
    for point, m in memory:
        per = ", ".join(f"{p['role']} {p['rss_kb'] / 1024:.0f}" for p in m["procs"])
        L.append(f"| {point} | {m['total_kb'] / 1024:.0f} (+{(m['total_kb'] - base) / 1024:.0f}) | {per} |")
    return L


def server_notes(res: ConfigResult) -> list[str]:
    """What was left in the store, what /health/service said, and the server log's warnings."""
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
    L = ["", "; ".join(extras) + "."] if extras else []
    if lg and lg.get("first"):
        L += ["", "```", *(x[:300] for x in lg["first"]), "```"]
    return L


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
