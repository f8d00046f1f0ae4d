"""Several processes: `serve --workers N` spreads connections across its processes; two `serve`
and two `worker` processes lose nothing when one of each is killed."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from conftest import wait_until
from helpers import clean_env, wait_answering
from servers import free_port

BIN = Path(sys.executable).with_name("viewer-service")


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(d))
    return out


def _established(port: int) -> set[int]:
    """Socket inodes of the server side of established TCP connections on 127.0.0.1:port."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        local, state, inode = f[1], f[3], int(f[9])
        if state == "01" and int(local.split(":")[1], 16) == port:
            inodes.add(inode)
    return inodes


def _queued(port: int) -> int:
    """Connections waiting in the accept queues of the listening sockets on 127.0.0.1:port."""
    n = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A" and int(f[1].split(":")[1], 16) == port:
            n += int(f[4].split(":")[1], 16)  # rx_queue of a listening socket: its accept backlog
    return n


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    except OSError:
        pass
    return out


def _ask_health(conns: list[socket.socket]) -> None:
    """One GET /health on each connection, answered before the next is asked; keeps them open."""
    for c in conns:
        c.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = c.recv(4096)
            assert chunk, "the server closed the connection"
            got += chunk
        assert got.startswith(b"HTTP/1.1 200"), got[:200]


async def _wait_started(proc: subprocess.Popen, n: int, timeout: float = 90) -> list[int]:
    """The serving processes, once `n` of them have finished their startup (each logs it)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    seen: list[str] = []
    while sum("Application startup complete" in line for line in seen) < n:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stderr.readline), max(0.1, end - loop.time()))
        if not line:
            raise AssertionError(f"serve exited with {proc.wait(timeout=10)}:\n{''.join(seen)[-3000:]}")
        seen.append(line.decode(errors="replace"))
    return [p for p in _children(proc.pid) if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text()]


async def test_serve_workers_spreads_connections_across_its_processes(pg_url, redis_server):
    """64 connections at once, as the benchmark opens them: each of the 2 processes holds a share
    (each has its own SO_REUSEPORT socket, and the kernel picks the socket by a hash of the
    connection's addresses)."""
    port = free_port()
    env = clean_env(VIEWER_DATABASE_URL=pg_url, VIEWER_REDIS_URL=redis_server.url, VIEWER_ACCESS_LOG="false",
                    VIEWER_REDIS_PREFIX=f"vt-procs-{random.getrandbits(32):x}:")
    proc = subprocess.Popen([BIN, "serve", "--port", str(port), "--workers", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        workers = await _wait_started(proc, 2)
        assert len(workers) == 2, workers
        base = f"http://127.0.0.1:{port}"
        await wait_answering(base + "/health", proc)
        # A burst of connections while one process is busy (here: stopped), as when wrk opens its 64
        # at once: with one socket shared by both, the other process accepts the whole burst.
        busy, other = workers
        os.kill(busy, signal.SIGSTOP)
        try:
            conns = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(64)]
            # Until the running process has accepted what it will: the rest wait in an accept queue.
            async def settled():
                return len(_socket_inodes(other) & _established(port)) + _queued(port) == 64

            assert await wait_until(settled)
        finally:
            os.kill(busy, signal.SIGCONT)
        try:
            await asyncio.get_running_loop().run_in_executor(None, _ask_health, conns)
            open_now = _established(port)
            held = {pid: len(_socket_inodes(pid) & open_now) for pid in workers}
        finally:
            for c in conns:
                c.close()
        assert sum(held.values()) == 64, held
        # Spread by a hash of each connection's ports: below 12 of 64 is ~1e-7 for a fair split.
        assert min(held.values()) >= 12, held
        # SO_REUSEPORT would let a second `serve` on the port share the connections: it is refused.
        second = subprocess.run([BIN, "serve", "--port", str(port), "--workers", "2"], env=env, timeout=60,
                                capture_output=True)
        assert second.returncode == 1, second.stderr.decode()[-2000:]
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr.decode()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()[-3000:]


# ---------------------------------------------------------------- two by two, one of each killed

LEAVES = ("k1", "k2", "k3")


class Procs:
    """The service's processes of one test, logs in files; every one stopped at the end."""

    def __init__(self, env: dict, tmp: Path):
        self.env, self.tmp, self.all = env, tmp, []

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "ab")
        p = subprocess.Popen([BIN, *args], env=self.env, cwd=self.tmp, stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.all.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.all:
            if p.poll() is None:
                p.terminate()
        for p in self.all:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"== {f.name}\n{f.read_text(errors='replace')[-1500:]}" for f in sorted(self.tmp.glob("*.log")))


class Load:
    """Learners driven through two serving processes, like a load balancer: each request goes to
    the next process, and one that is refused or cut (a killed process) is sent to the other.
    Only a 200 counts as acknowledged; the acknowledged progress and ends are recorded."""

    def __init__(self, bases: list[str]):
        self.bases = bases
        self.sent = 0
        self.acked = 0
        self.acked_by = {b: 0 for b in bases}
        self.progress: dict[tuple[str, str], int] = {}  # (user, content) -> highest acknowledged progress
        self.ended: set[tuple[str, str]] = set()
        self.client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=32))

    async def post(self, path: str, request: dict) -> None:
        for attempt in range(40):  # bounded: the other process answers while one is down
            base = self.bases[(self.sent + attempt) % len(self.bases)]
            try:
                r = await self.client.post(base + path, json={"request": request})
            except httpx.TransportError:
                await asyncio.sleep(0.05)
                continue
            assert r.status_code == 200, (path, r.status_code, r.text[:500])
            self.sent += 1
            self.acked += 1
            self.acked_by[base] += 1
            return
        raise AssertionError(f"{path} was not acknowledged by either process in 40 attempts")

    async def learner(self, user: str, ids: dict, leaves: tuple[str, ...], rnd: random.Random) -> None:
        await self.post("/v1/enrol", {"userId": user, **ids})
        for cid in leaves:
            one = {"userId": user, "contentId": cid, **ids}
            await self.post("/v1/view/start", one)
            for p in sorted(rnd.sample(range(5, 95), 2)):
                await self.post("/v1/view/update", {**one, "progress": p, "timespent": 3})
                self.progress[(user, cid)] = max(p, self.progress.get((user, cid), 0))
            await self.post("/v1/view/end", one)
            self.ended.add((user, cid))


@pytest.mark.slow
@pytest.mark.timeout(900)  # four processes started, one restarted: minutes on a busy 2-core machine
async def test_two_serves_and_two_workers_lose_nothing_when_one_of_each_is_killed(pg_server, redis_cluster, tmp_path):
    """Two `serve` and two `worker` processes on one PostgreSQL and one Redis Cluster, under view
    start/update/end load with enrolments that complete. One serve and one worker are killed
    (SIGKILL) mid-run and started again; the last learners start after the restart. Every acknowledged write is in the database
    and in what both serving processes read back; every completion has its two events, once."""
    import redis.asyncio as aioredis

    from conftest import migrate
    from servers import create_database, drop_database, pg_execute

    dsn = create_database(pg_server.admin_dsn)
    run = f"{random.getrandbits(32):x}"
    prefix = f"vt-kill-{run}:"
    try:
        migrate(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
        env = clean_env(VIEWER_DATABASE_URL=dsn, VIEWER_REDIS_URL=redis_cluster.url, VIEWER_REDIS_CLUSTER="true",
                        VIEWER_REDIS_PREFIX=prefix, VIEWER_EVENT_SINK="redis-stream:events",
                        VIEWER_ACCESS_LOG="false", VIEWER_WORKER_POLL_SECONDS="0.05",
                        # A killed worker's claims (recomputes, events) pass to the other one soon.
                        VIEWER_WORKER_LEASE_SECONDS="2")
        procs, load = Procs(env, tmp_path), None
        ports = [free_port(), free_port()]
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        try:
            serves = [procs.start(f"serve{i}", "serve", "--port", str(p)) for i, p in enumerate(ports)]
            workers = [procs.start(f"worker{i}", "worker") for i in range(2)]
            for b, s in zip(bases, serves):
                await wait_answering(b + "/health", s)
            course, batch = f"kc-{run}", f"kb-{run}"
            async with httpx.AsyncClient(base_url=bases[0], timeout=30) as c:
                r = await c.put(f"/v1/collection/{course}", json={"request": {"name": "K", "leafNodes": list(LEAVES)}})
                assert r.status_code == 200, r.text
                r = await c.put(f"/v1/context/{batch}", json={"request": {"type": "batch", "collectionIds": [course]}})
                assert r.status_code == 200, r.text
            ids = {"collectionId": course, "contextId": batch}

            load = Load(bases)
            # Three in four learners view every leaf (their enrolment completes); the rest two.
            plan = {f"kill-{run}-{i}": LEAVES if i % 4 else LEAVES[:2] for i in range(32)}
            per_learner = {u: 1 + 4 * len(leaves) for u, leaves in plan.items()}
            total = sum(per_learner.values())
            # The last quarter of the learners start once the killed serve answers again, so the
            # restarted processes take part.
            second_wave = set(list(plan)[-len(plan) // 4:])
            kill_at = (total - sum(per_learner[u] for u in second_wave)) // 2
            marks: dict[str, int] = {}
            restarted = asyncio.Event()

            async def chaos():
                loop = asyncio.get_running_loop()
                end = loop.time() + 120
                while load.acked < kill_at:
                    assert loop.time() < end, "the load stalled before the kill"
                    await asyncio.sleep(0.01)
                serves[0].kill()
                workers[0].kill()
                serves[0].wait(timeout=10)
                workers[0].wait(timeout=10)
                marks["killed at"] = load.acked
                workers[0] = procs.start("worker0-again", "worker")
                serves[0] = procs.start("serve0-again", "serve", "--port", str(ports[0]))
                await wait_answering(bases[0] + "/health", serves[0])
                marks["serve restarted at"] = load.acked
                marks["acked by it before"] = load.acked_by[bases[0]]
                restarted.set()

            sem = asyncio.Semaphore(12)

            async def one(user):
                if user in second_wave:
                    await asyncio.wait_for(restarted.wait(), 300)
                async with sem:
                    await load.learner(user, ids, plan[user], random.Random(f"{run}{user}"))

            try:
                await asyncio.gather(chaos(), *(one(u) for u in plan))
            except Exception as e:
                raise AssertionError(f"load failed: {e!r}; logs:\n{procs.logs()}") from e
            assert load.acked == total
            after_restart = load.acked_by[bases[0]] - marks["acked by it before"]
            assert after_restart > 0, "the restarted serve took no part in the run"

            # Bounded: the workers catch up (recomputes done, events delivered).
            completing = {u for u, leaves in plan.items() if leaves == LEAVES}

            def backlog():
                return pg_execute(dsn, f"SELECT (SELECT count(*) FROM scope_dirty) + (SELECT count(*) FROM event_outbox)"
                                       f" + (SELECT count(*) FROM enrolment WHERE completed_on IS NULL AND user_id IN "
                                       f"({','.join(repr(u) for u in completing)}))")[0][0]

            async def caught_up():
                return await asyncio.to_thread(backlog) == 0

            assert await wait_until(caught_up, timeout=120), f"the workers did not catch up:\n{procs.logs()}"

            # Nothing acknowledged lost: in the database ...
            rows = await asyncio.to_thread(pg_execute, dsn, f"SELECT user_id, content_id, status, progress FROM "
                                                            f"user_content_consumption WHERE context_id = '{batch}'")
            stored = {(r["user_id"], r["content_id"]): (r["status"], r["progress"]) for r in rows}
            lost = [k for k, p in load.progress.items() if k not in stored or stored[k][1] < p]
            lost += [k for k in load.ended if stored.get(k, (0, 0)) != (2, 100)]
            # ... and as each serving process reads it (through the cache).
            for base in bases:
                for user, leaves in plan.items():
                    got = (await load.client.post(base + "/v1/view/read", json={"request": {
                        "userId": user, "contentId": list(leaves), **ids}})).json()["result"]["contents"]
                    lost += [(base, user, c["identifier"]) for c in got
                             if (c["status"], c["progress"]) != (2, 100)]
            assert lost == [], lost

            # Each completion's two events, once (the sink keeps one per mid; count what it holds).
            cluster = aioredis.RedisCluster.from_url(redis_cluster.url)
            try:
                events = [orjson.loads(f[b"event"]) for _, f in await cluster.xrange(prefix + "events")]
            finally:
                await cluster.aclose()
            mids = [e["mid"] for e in events]
            duplicates = len(mids) - len(set(mids))
            issued = sorted(e["edata"]["userIds"][0] for e in events if e.get("eid") == "BE_JOB_REQUEST")
            audited = sorted(e["actor"]["id"] for e in events if e.get("eid") == "AUDIT")
            assert duplicates == 0
            assert issued == audited == sorted(completing)
            print(f"\nkill test: {load.acked} requests acknowledged ({total - len(plan)} view writes), "
                  f"serve and worker killed at {marks['killed at']}, serve answering again at "
                  f"{marks['serve restarted at']} (then acknowledged {after_restart}); lost {len(lost)}; "
                  f"{len(completing)} completions, "
                  f"{len(events)} events, duplicates {duplicates}")
        finally:
            procs.stop_all()
            if load is not None:
                await load.client.aclose()
    finally:
        drop_database(pg_server.admin_dsn, dsn)
