"""The report of bench/worker.py: the throughput of recomputes against the floor, and the end-to-end
lag, as Markdown."""

from __future__ import annotations

import platform

from harness import fmt, med, pg_exec
from procfs import NCPU, cpu_model
from worker_lag import LAG_LEAVES
from worker_throughput import LOG_COUNTER, PER_UNIT, UNITS

LABEL = {"sqlite": "SQLite (file, WAL, synchronous=FULL)", "postgres": "PostgreSQL"}


def versions(args) -> dict:
    import sqlite3
    from importlib.metadata import version

    v = {"python": platform.python_version(), "SQLite": sqlite3.sqlite_version}
    for pkg in ("sqlalchemy", "asyncpg", "aiosqlite", "httpx"):
        try:
            v[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            pass
    if "postgres" in args.stacks:
        try:
            v["PostgreSQL"] = pg_exec(args.pg_url, "SHOW server_version", fetch=True)
        except Exception as e:  # noqa: BLE001
            v["PostgreSQL"] = f"unreachable ({e})"
    return v


def summarize_tp(tp: dict) -> dict:
    ps = tp["passes"]
    w = [p for p in ps if p["kind"] == "worker"]
    f = [p for p in ps if p["kind"] == "floor"]
    first = w[0] if w else None
    steady = w[1:]

    def rate(p):
        return p["scopes"] / p["wall"] if p["wall"] else float("nan")

    def per(ps_, key):
        # A PostgreSQL process that ended during the pass takes its CPU time with it: a negative
        # difference is no measurement.
        xs = [p[key] / max(1, p["scopes"]) * 1000 for p in ps_]
        return float("nan") if any(x < 0 for x in xs) else med(xs)

    s = {
        "first_rate": rate(first) if first else float("nan"),
        "first_ms": first["wall"] / max(1, first["scopes"]) * 1000 if first else float("nan"),
        "steady_rate": med([rate(p) for p in steady]),
        "steady_ms": med([p["wall"] / max(1, p["scopes"]) * 1000 for p in steady]),
        "floor_rate": med([rate(p) for p in f]),
        "floor_ms": med([p["wall"] / max(1, p["scopes"]) * 1000 for p in f]),
        "steady_cpu": per(steady, "proc_cpu"), "floor_cpu": per(f, "proc_cpu"),
        "first_cpu": per([first], "proc_cpu") if first else float("nan"),
        "steady_pg": per(steady, "pg_cpu"), "floor_pg": per(f, "pg_cpu"),
        "first_pg": per([first], "pg_cpu") if first else float("nan"),
        "steady_all": [rate(p) for p in steady], "floor_all": [rate(p) for p in f],
    }
    s["ratio"] = s["steady_rate"] / s["floor_rate"] if s["floor_rate"] else float("nan")
    s["first_ratio"] = s["first_rate"] / s["floor_rate"] if s["floor_rate"] else float("nan")
    return s


def report(args, started, machine_load, vers, results, argv) -> str:
    L = header(args, started, machine_load, vers, argv)
    L += throughput_section(args, results)
    L += lag_section(args, results)
    L += logs_section(results)
    L.append("")
    return "\n".join(L)


def header(args, started, machine_load, vers, argv) -> list[str]:
    L = []
    L.append(f"# Worker benchmark (`bench/worker.py`), {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}")
    L.append("")
    L.append(f"Machine: {NCPU} CPUs ({cpu_model()}), Linux {platform.release()}; load before the run "
             f"{machine_load:.2f} cores busy. Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".  ")
    L.append(f"Command: `{' '.join(['.venv/bin/python bench/worker.py', *argv])}` "
             f"(learners {args.learners:,}, repeats {args.repeats}, lag learners {args.lag_learners} at "
             f"concurrency {args.lag_concurrency}, idle learners {args.idle_learners}).")

    return L


def throughput_section(args, results) -> list[str]:
    L = []
    L.append("")
    L.append(f"## 1. Throughput: recomputes of a 50-leaf collection ({UNITS} units × {PER_UNIT} leaves)")
    L.append("")
    L.append(f"{args.learners:,} learners, each with 50 completed rows (status 2) in one scope, an active "
             f"enrolment and a dirty mark; `AggregationWorker(engine, catalog, batch=100).run_once()` in a "
             f"loop until the queue is empty, in this process (wall time). Per scope the worker writes "
             f"1 Course + {UNITS} Unit aggregate rows, the enrolment, and drops the mark.")
    L.append("")
    L.append("- **first completion** = repeat 1: every enrolment completes, so each recompute also queues "
             "2 outbox events (cert-issue, enrol-complete; no dispatcher runs here, they stay queued).")
    steady = (f"repeats 2..{args.repeats} (median)" if args.repeats > 2 else "repeat 2" if args.repeats == 2
              else "not measured (needs --repeats 2 or more)")
    L.append(f"- **steady recompute** = {steady}: the scopes are already completed, no events. Every pass "
             "re-marks all scopes dirty first.")
    L.append("- **floor** (median of all repeats, interleaved with the worker's: W F, F W, W F, …): the same "
             "claim statement (100 scopes per round, with lease), then per scope one transaction that reads "
             "the scope's 50 raw rows (`load_scope`), deletes and inserts the same 6 aggregate rows with "
             "constant values, updates the enrolment with constants and deletes the mark by seq. No catalog "
             "lookup, no scope lock, no read of the stored aggregate or enrolment, no compute.")
    L.append("")
    L.append("| stack | first completion scopes/s (ms/scope) | steady recompute scopes/s (ms/scope) | floor scopes/s (ms/scope) | steady / floor | first / floor | bench-process CPU ms/scope: first, steady, floor | PostgreSQL CPU ms/scope: first, steady, floor | steady, floor scopes/s per repeat | seeding |")
    L.append("|---|---:|---:|---:|---:|---:|---|---|---|---|")
    problems = []
    for stack, r in results.items():
        tp = r.get("throughput")
        if not tp:
            why = f"FAILED: {r['throughput_error']}" if "throughput_error" in r else "skipped"
            L.append(f"| {LABEL[stack]} | {why} |||||||||")
            continue
        s = summarize_tp(tp)
        pg = (f"{fmt(s['first_pg'], 2)}, {fmt(s['steady_pg'], 2)}, {fmt(s['floor_pg'], 2)}"
              if stack == "postgres" else "n/a (in process)")
        L.append(f"| {LABEL[stack]} | {fmt(s['first_rate'])} ({fmt(s['first_ms'], 2)}) | "
                 f"{fmt(s['steady_rate'])} ({fmt(s['steady_ms'], 2)}) | {fmt(s['floor_rate'])} ({fmt(s['floor_ms'], 2)}) | "
                 f"{fmt(s['ratio'], 2)} | {fmt(s['first_ratio'], 2)} | "
                 f"{fmt(s['first_cpu'], 2)}, {fmt(s['steady_cpu'], 2)}, {fmt(s['floor_cpu'], 2)} | {pg} | "
                 f"{', '.join(fmt(x) for x in s['steady_all'])}; {', '.join(fmt(x) for x in s['floor_all'])} | "
                 f"{tp['seed_rows']:,} rows in {tp['seed_s']:.1f} s |")
        problems += throughput_checks(args, stack, tp)
    av = [r["throughput"].get("autovacuum") for r in results.values() if (r.get("throughput") or {}).get("autovacuum")]
    if av:
        L.append("")
        L.append(f"PostgreSQL: `autovacuum` is `{av[0]}` on this server. After loading, the seeded tables get a "
                 "`VACUUM (ANALYZE)` (not the aggregate and outbox tables, which stay as a fresh deployment has them), and "
                 "before every pass after the first the queue, aggregate, enrolment and outbox tables get an "
                 "untimed `VACUUM (ANALYZE)`, as autovacuum would give tables this busy.")
    L.append("")
    L.append("CPU columns: CPU seconds per scope of this benchmark process (the worker's Python code, "
             "SQLAlchemy, the driver; on SQLite also the database engine itself, which runs in "
             "aiosqlite's thread) and of all PostgreSQL processes on the machine (n/a when one of them "
             "ended during the pass and took its CPU count with it).")
    if problems:
        L.append("")
        L.append("Checks that failed: " + "; ".join(problems) + ".")
    elif any(r.get("throughput") for r in results.values()):
        L.append("")
        L.append(f"Checks: every pass recomputed all {args.learners:,} scopes and left no marks; no worker "
                 f"warnings; repeat 1 completed all enrolments and queued exactly 2 events each; later "
                 f"repeats queued none.")
    return L


def throughput_checks(args, stack: str, tp: dict) -> list[str]:
    """What a correct run shows: every pass recomputed every scope and left no mark; repeat 1 completed
    every enrolment and queued 2 events each; later repeats queued none."""
    problems = []
    for p in tp["passes"]:
        if p["left"] or p.get("deferred") or p["warnings"] or p["scopes"] != args.learners:
            problems.append(f"{LABEL[stack]} repeat {p['repeat']} {p['kind']}: {p['scopes']} scopes of "
                            f"{args.learners}, {p['left']} marks left, deferred {p.get('deferred', 0)}, "
                            f"{p['warnings']} warnings")
    ch = tp["checks"]
    if ch.get("completed_enrolments") != args.learners or ch.get("outbox_events") != 2 * args.learners:
        problems.append(f"{LABEL[stack]}: after the first completion {ch.get('completed_enrolments')} enrolments "
                        f"completed and {ch.get('outbox_events')} outbox events (expected {args.learners} and "
                        f"{2 * args.learners})")
    if ch.get("agg_rows") != args.learners * (UNITS + 1) or ch.get("outbox_events_end") != 2 * args.learners:
        problems.append(f"{LABEL[stack]}: at the end {ch.get('agg_rows')} aggregate rows and "
                        f"{ch.get('outbox_events_end')} outbox events (expected {args.learners * (UNITS + 1)} "
                        f"and {2 * args.learners})")
    return problems


def lag_section(args, results) -> list[str]:
    L = []
    L.append("")
    L.append("## 2. End-to-end lag: acknowledged last view end → stored completion → event delivered")
    L.append("")
    L.append("`viewer-service serve --migrate` as a subprocess (SQLite: the worker and the event "
             "dispatcher run inside it; PostgreSQL: plus one `viewer-service worker` process, Redis cache), "
             "default settings (`VIEWER_WORKER_POLL_SECONDS` 0.2, batch 100), "
             "`VIEWER_EVENT_SINK=file:<tmp>/events.jsonl`. A learner: `POST /v1/enrol`, then "
             f"`view/start` + `view/end` of each of the {len(LAG_LEAVES)} leaves of a 5-leaf collection "
             "(httpx, one connection pool). The lag runs from the moment the learner's last `view/end` was "
             "acknowledged to the moment a poller (every 10 ms, own engine) sees the enrolment's "
             "`completed_on` set in the database (**stored**), and sees the learner's enrol-complete AUDIT "
             "line in the events file (**delivered**); resolution ≈ 10 ms.")
    L.append("")
    L.append(f"- **loaded**: {args.lag_learners} learners, {args.lag_concurrency} at a time (the worker is busy "
             "while the requests come in).")
    L.append(f"- **idle**: {args.idle_learners} learners one after another, each started 50–300 ms after the "
             "previous one's event was delivered (the worker is idle, polling).")
    L.append("")
    L.append("| stack | phase | learners | stored p50 / p90 / max ms | delivered p50 / p90 / max ms | summary/read right after the last end: status 2, completedOn set | load |")
    L.append("|---|---|---:|---|---|---|---|")
    lag_notes = []
    for stack, r in results.items():
        lg = r.get("lag")
        if not lg or "loaded" not in lg:
            why = f"FAILED: {r['lag_error']}" if "lag_error" in r else "skipped"
            L.append(f"| {LABEL[stack]} | {why} ||||||")
            continue
        L += lag_rows(stack, lg)
        lag_notes += lag_problems(stack, lg)
    L += lag_breakdown(results)
    L += LAG_EXPLAINED
    if lag_notes:
        L.append("")
        L.append("Problems: " + "; ".join(lag_notes) + ".")
    return L


def lag_rows(stack: str, lg: dict) -> list[str]:
    L = []
    for phase in ("loaded", "idle"):
        ph = lg.get(phase)
        if not ph:
            continue
        st, de = ph["stored"], ph["delivered"]
        load = (f"{ph['learners'] * 12:,} requests in {ph['wall_s']:.1f} s ({ph['requests_per_s']:,.0f}/s), "
                f"machine {ph['machine_busy']:.2f} cores busy" if phase == "loaded" else "one learner at a time")
        miss = ""
        if st["missing"] or de["missing"]:
            miss = f" (**not seen: {st['missing']} stored, {de['missing']} delivered**)"
        L.append(f"| {LABEL[stack]} | {phase} | {ph['learners']} | {fmt(st['p50'])} / {fmt(st['p90'])} / "
                 f"{fmt(st['max'])}{miss} | {fmt(de['p50'])} / {fmt(de['p90'])} / {fmt(de['max'])} | "
                 f"{ph['summary_status2']}/{ph['learners']}, {ph['summary_completed_on']}/{ph['learners']} | {load} |")
    return L


def lag_problems(stack: str, lg: dict) -> list[str]:
    notes = []
    if lg.get("event_lines") != lg.get("expected_event_lines"):
        notes.append(f"{LABEL[stack]}: {lg.get('event_lines')} event lines in the file, expected "
                     f"{lg.get('expected_event_lines')} (2 per completed learner)")
    if lg.get("non2xx_count"):
        notes.append(f"{LABEL[stack]}: {lg['non2xx_count']} non-2xx answers, e.g. {lg['non2xx'][0]}")
    for d in lg.get("died", []):
        notes.append(f"{LABEL[stack]}: {d}")
    if lg.get("observer", {}).get("error"):
        notes.append(f"{LABEL[stack]}: the poller saw an error: {lg['observer']['error']}")
    return notes


def lag_breakdown(results) -> list[str]:
    L = []
    rows = [(stack, phase, r["lag"][phase]["breakdown"]) for stack, r in results.items()
            for phase in ("loaded", "idle") if (r.get("lag") or {}).get(phase, {}).get("breakdown")]
    if rows:
        L.append("")
        L.append("Where the lag goes, split at the recompute that completed the enrolment (its time is the "
                 "`ets` of the learner's enrol-complete event, the worker's clock): p50 / p90 / max ms.")
        L.append("")
        L.append("| stack | phase | last end acknowledged → recompute | recompute → completion visible | recompute → event in the file |")
        L.append("|---|---|---|---|---|")
        for stack, phase, b in rows:
            L.append(f"| {LABEL[stack]} | {phase} | " + " | ".join(
                f"{fmt(b[k]['p50'])} / {fmt(b[k]['p90'])} / {fmt(b[k]['max'])}"
                for k in ("ack_to_recompute", "recompute_to_stored", "recompute_to_delivered")) + " |")
    return L


LAG_EXPLAINED = [
    "",
    "`summary/read` is read-after-write: it computes the summary from the live content statuses, so "
    "the status-2 column is how many learners it showed completed on the first read right after "
    "their last `view/end` was acknowledged, before the worker ran.",
    "",
    "How the lag arises (src/viewer_service/loops.py, worker.py, api/enrolments.py): a worker "
    "runs rounds back to back while it finds work and sleeps `VIEWER_WORKER_POLL_SECONDS` after an "
    "empty round. Only `POST /v1/enrol` (and an assessment submit) wakes the worker inside `serve` "
    "(SQLite); a view end wakes nothing, and a separate `viewer-service worker` process (PostgreSQL) is never woken. So with an "
    "idle PostgreSQL worker a completion waits 0 to 0.2 s (uniform) for the next poll; with the "
    "SQLite in-serve worker it waits for the poll that comes 0.2 s after the recompute that the "
    "enrolment triggered, i.e. 0.2 s minus the time the learner spent on its 10 view calls. The "
    "event dispatcher runs in the worker's process and the worker wakes it after each round that queued "
    "events, so an idle system delivers one claim, one fsynced append and one delete after the stored "
    "completion. Under load the worker does not sleep: the lag is the queue ahead of the scope times "
    "the per-recompute time. On SQLite the view writes, the worker's claims and recomputes and the "
    "dispatcher's claims and deletes all take the one write lock (`BEGIN IMMEDIATE`); a waiter "
    "sleeps in SQLite's busy handler (up to 100 ms per retry) and can lose the lock several times "
    "in a row, which is what the long tail of SQLite's loaded delivery is made of.",
]


def logs_section(results) -> list[str]:
    L = []
    logs = [(stack, name, lg) for stack, r in results.items() for name, lg in (r.get("lag") or {}).get("logs", {}).items()]
    if logs or LOG_COUNTER.records:
        L.append("")
        L.append("## Logs")
        L.append("")
        for stack, name, lg in logs:
            L.append(f"- {LABEL[stack]} `{name}` (`{lg['path']}`): {lg['lines']} lines, {lg['warning']} WARNING, "
                     f"{lg['error']} ERROR, {lg['traceback']} tracebacks")
            for ln in lg["first"]:
                L.append(f"  - `{ln[:240]}`")
        L.append(f"- throughput (in this process): {len(LOG_COUNTER.records)} warnings from viewer_service"
                 + (": " + "; ".join(f"`{x}`" for x in LOG_COUNTER.records[:5]) if LOG_COUNTER.records else ""))
    return L
