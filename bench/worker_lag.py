"""Part 2 of bench/worker.py, end-to-end lag: `viewer-service serve` (plus `viewer-service worker` on
PostgreSQL) as subprocesses; learners enrol and start+end the 5 leaves of a collection over HTTP; the
time from the acknowledgement of a learner's last view end until the enrolment's completed_on is
visible in the database (stored), and until its enrol-complete event is in the file sink (delivered)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from harness import ROOT, BenchError, Cleanup, Store, free_port, pct, redis_delete_prefix, sayer
from procfs import CpuMeter
from server import LoggedProcess, scan_log, service_command

say = sayer("bench-worker")

LAG_COL = "bench_lag5"  # 5 leaves, no units
LAG_LEAVES = [f"do_lag{i}" for i in range(1, 6)]


class Observer:
    """Polls, every `interval` s, the enrolment table (completed_on set) through its own engine,
    and the event file (new enrol-complete AUDIT lines); records when each learner first shows."""

    def __init__(self, url: str, events_path: str, interval: float = 0.01):
        from viewer_service.adapters.db.engine import make_engine, reader

        self.engine = make_engine(url, pool_size=1)
        self.reader = reader(self.engine)
        self.events_path = events_path
        self.interval = interval
        self.stored: dict[str, float] = {}
        self.delivered: dict[str, float] = {}
        self.recomputed: dict[str, float] = {}  # the event's ets: when the worker recomputed (epoch s)
        self.event_lines = 0
        self.foreign_lines = 0
        self.polls = 0
        self.poll_s: list[float] = []
        self._offset = 0
        self._partial = b""
        self._task: asyncio.Task | None = None
        self.error: str | None = None

    def start(self):
        self._task = asyncio.create_task(self._run())

    async def close(self):
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.engine.dispose()

    async def _run(self):
        import sqlalchemy as sa

        from viewer_service.adapters.db.tables import enrolment as en

        q = sa.select(en.c.user_id).where(en.c.collection_id == LAG_COL, en.c.completed_on.is_not(None))
        while True:
            t0 = time.monotonic()
            try:
                async with self.reader.connect() as conn:
                    users = (await conn.execute(q)).scalars().all()
                now = time.time()
                for u in users:
                    self.stored.setdefault(u, now)
                self._read_events(time.time())
            except Exception as e:  # noqa: BLE001 - reported, keep polling
                self.error = repr(e)
            self.polls += 1
            self.poll_s.append(time.monotonic() - t0)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - t0)))

    def _read_events(self, now: float) -> None:
        try:
            with open(self.events_path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            self.event_lines += 1
            try:
                ev = json.loads(line)
            except ValueError:
                self.foreign_lines += 1
                continue
            if ev.get("eid") == "AUDIT" and (ev.get("edata") or {}).get("type") == "enrol-complete":
                user = (ev.get("actor") or {}).get("id")
                self.delivered.setdefault(user, now)
                if isinstance(ev.get("ets"), int):
                    self.recomputed.setdefault(user, ev["ets"] / 1000)


class Client:
    def __init__(self, base: str):
        import httpx

        self.http = httpx.AsyncClient(base_url=base, timeout=30,
                                      limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
        self.non2xx: list[str] = []
        self.requests = 0

    async def call(self, method: str, path: str, body: dict) -> dict:
        self.requests += 1
        r = await self.http.request(method, path, json={"request": body})
        if r.status_code >= 300:
            self.non2xx.append(f"{method} {path} -> {r.status_code} {r.text[:200]}")
            raise BenchError(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    async def close(self):
        await self.http.aclose()


async def learner(client: Client, user: str) -> tuple[float, dict]:
    """Enrol, start+end the 5 leaves; returns (wall time of the last end's ack, summary)."""
    await client.call("POST", "/v1/enrol", {"userId": user, "collectionId": LAG_COL})
    for leaf in LAG_LEAVES:
        await client.call("POST", "/v1/view/start", {"userId": user, "contentId": leaf, "collectionId": LAG_COL})
        await client.call("POST", "/v1/view/end", {"userId": user, "contentId": leaf, "collectionId": LAG_COL})
    acked = time.time()
    s = await client.call("POST", "/v1/summary/read", {"userId": user, "collectionId": LAG_COL})
    return acked, s["result"]


def breakdown(acks: dict[str, float], obs: "Observer") -> dict:
    """Where the lag goes, by the event's ets (the worker's clock when it recomputed the scope)."""
    us = [u for u in acks if u in obs.recomputed and u in obs.stored and u in obs.delivered]
    parts = {"ack_to_recompute": [(obs.recomputed[u] - acks[u]) * 1000 for u in us],
             "recompute_to_stored": [(obs.stored[u] - obs.recomputed[u]) * 1000 for u in us],
             "recompute_to_delivered": [(obs.delivered[u] - obs.recomputed[u]) * 1000 for u in us]}
    return {k: {"p50": pct(v, 50), "p90": pct(v, 90), "max": max(v) if v else float("nan")} for k, v in parts.items()}


def lag_stats(acks: dict[str, float], seen: dict[str, float]) -> dict:
    lags = [(seen[u] - t) * 1000 for u, t in acks.items() if u in seen]
    return {"n": len(lags), "missing": len(acks) - len(lags), "p50": pct(lags, 50), "p90": pct(lags, 90),
            "max": max(lags) if lags else float("nan"), "min": min(lags) if lags else float("nan")}


async def wait_seen(obs: Observer, users, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(u in obs.stored and u in obs.delivered for u in users):
            return True
        await asyncio.sleep(0.01)
    return False


def summary_counts(summaries: dict[str, dict]) -> dict:
    """How many `summary/read`s right after the last view end showed the learner completed."""
    return {"summary_status2": sum(1 for s in summaries.values() if s.get("status") == 2),
            "summary_completed_on": sum(1 for s in summaries.values() if s.get("completedOn") is not None),
            "summary_progress100": sum(1 for s in summaries.values() if s.get("progress") == 100)}


async def loaded(client: Client, obs: Observer, users: list[str], concurrency: int) -> dict:
    """All `users`, `concurrency` at a time: the worker is busy while the requests come in."""
    sem = asyncio.Semaphore(concurrency)
    acks: dict[str, float] = {}
    summaries: dict[str, dict] = {}

    async def one(u):
        async with sem:
            acks[u], summaries[u] = await learner(client, u)

    t0 = time.monotonic()
    with CpuMeter() as load_cpu:
        await asyncio.gather(*(one(u) for u in users))
    load_s = time.monotonic() - t0
    ok = await wait_seen(obs, users, 60)
    return {"learners": len(users), "wall_s": load_s, "requests_per_s": len(users) * 12 / load_s,
            "machine_busy": load_cpu.machine, "all_seen": ok,
            "stored": lag_stats(acks, obs.stored), "delivered": lag_stats(acks, obs.delivered),
            "breakdown": breakdown(acks, obs), **summary_counts(summaries)}


async def idle(client: Client, obs: Observer, users: list[str]) -> dict:
    """One learner at a time, each once the previous one's event is out: the worker is idle."""
    acks: dict[str, float] = {}
    summaries: dict[str, dict] = {}
    rnd = random.Random(1)
    for u in users:
        await asyncio.sleep(rnd.uniform(0.05, 0.3))
        acks[u], summaries[u] = await learner(client, u)
        if not await wait_seen(obs, [u], 10):
            break
    return {"learners": len(users), "stored": lag_stats(acks, obs.stored),
            "delivered": lag_stats(acks, obs.delivered), "breakdown": breakdown(acks, obs),
            **summary_counts(summaries)}


async def lag_async(base: str, url: str, events_path: str, args, stack: str, procs: list[LoggedProcess]) -> dict:
    client = Client(base)
    obs = Observer(url, events_path)
    out: dict = {}
    try:
        await client.call("PUT", f"/v1/collection/{LAG_COL}", {"name": "x", "leafNodes": LAG_LEAVES})
        obs.start()
        tag = secrets.token_hex(3)
        users = [f"bench_lag_{tag}_{i:04d}" for i in range(args.lag_learners)]
        out["loaded"] = await loaded(client, obs, users, args.lag_concurrency)
        say(f"[{stack}] lag, loaded: {len(users)} learners in {out['loaded']['wall_s']:.1f} s; stored p50 "
            f"{out['loaded']['stored']['p50']:.0f} ms, delivered p50 {out['loaded']['delivered']['p50']:.0f} ms")
        idle_users = [f"bench_lag_{tag}_idle{i:03d}" for i in range(args.idle_learners)]
        out["idle"] = await idle(client, obs, idle_users)
        say(f"[{stack}] lag, idle: stored p50 {out['idle']['stored']['p50']:.0f} ms, "
            f"delivered p50 {out['idle']['delivered']['p50']:.0f} ms")
        # Every event line: exactly 2 per completed learner (cert-issue + enrol-complete)?
        await asyncio.sleep(0.3)
        obs._read_events(time.time())
        out["event_lines"] = obs.event_lines
        out["expected_event_lines"] = 2 * (len(users) + len(idle_users))
        out["observer"] = {"polls": obs.polls, "poll_ms_p50": pct(obs.poll_s, 50) * 1000,
                           "poll_ms_p99": pct(obs.poll_s, 99) * 1000, "error": obs.error}
        out["requests"] = client.requests
        out["non2xx"] = client.non2xx[:5]
        out["non2xx_count"] = len(client.non2xx)
        for p in procs:
            if not p.alive():
                out.setdefault("died", []).append(f"{p.name} exited with {p.proc.returncode}")
    finally:
        await obs.close()
        await client.close()
    return out


def run_lag(stack: str, args, logdir: Path) -> dict:
    cleanup = Cleanup()
    procs: list[LoggedProcess] = []
    res: dict = {}
    try:
        tmp = tempfile.mkdtemp(prefix="viewer-bench-w-")
        cleanup.push(f"temp dir {tmp}", lambda: shutil.rmtree(tmp, ignore_errors=True))
        store = Store(stack, args.pg_url, cleanup, tmp, say, prefix="viewer_bench_w_")
        events = f"{tmp}/events.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
        env.update(VIEWER_DATABASE_URL=store.url, VIEWER_EVENT_SINK=f"file:{events}",
                   VIEWER_DOWNLOAD_DIR=f"{tmp}/downloads")
        if stack == "postgres":
            prefix = f"bench-w-{secrets.token_hex(6)}:"
            env.update(VIEWER_REDIS_URL=args.redis_url, VIEWER_REDIS_PREFIX=prefix)
            cleanup.push(f"redis keys {prefix}*", lambda: say(
                f"[{stack}] deleted {redis_delete_prefix(args.redis_url, prefix)} redis keys under {prefix}"))
            res["redis_prefix"] = prefix

        def start(name: str, *argv: str) -> LoggedProcess:
            p = LoggedProcess(name, logdir / f"{stack}-{name}.log")
            p.spawn(service_command() + list(argv), env, tmp)
            procs.append(p)
            cleanup.push(name, p.stop)
            return p

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve = start("serve", "serve", "--host", "127.0.0.1", "--port", str(port), "--migrate")
        res["startup_s"] = serve.wait_answering(base + "/health", 60, interval=0.1)
        if stack == "postgres":
            start("worker", "worker").wait_logged(" running")
        res.update(asyncio.run(lag_async(base, store.url, events, args, stack, procs)))
    finally:
        cleanup.run()
        res["logs"] = {p.name: {"path": os.path.relpath(p.log_path, ROOT), **scan_log(p.log_path)} for p in procs}
    return res
