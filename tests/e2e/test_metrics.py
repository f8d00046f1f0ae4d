"""Prometheus metrics at /metrics: scraped after known traffic, in-process (SQLite and
PostgreSQL + Redis) and from two serving processes (`serve --workers 2`)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_until
from helpers import clean_env, wait_answering
from progress_helpers import post, put_collection
from servers import free_port

BIN = Path(sys.executable).with_name("viewer-service")


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted label items): value} of an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: dict, name: str, **labels) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client) -> dict:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


async def test_metrics_count_known_traffic(client, user):
    before = await scrape(client)
    ids = {"userId": user, "collectionId": f"col-{user}", "contextId": f"b-{user}"}  # ids of its own: shared database
    await put_collection(client, ids["collectionId"], leafNodes=["c1", "c2"])
    r = await client.put(f"/v1/context/{ids['contextId']}", json={"request": {"type": "batch", "collectionIds": [ids["collectionId"]]}})
    assert r.status_code == 200
    assert (await post(client, "/v1/enrol", **ids))[0] == 200
    for cid in ("c1", "c2"):
        for op in ("start", "end"):
            assert (await post(client, f"/v1/view/{op}", **ids, contentId=cid))[0] == 200
    for _ in range(3):
        assert (await post(client, "/v1/view/read", **ids, contentId=["c1"]))[0] == 200
    assert (await post(client, "/v1/view/update", **ids, contentId="c1", progress="lots"))[0] == 400

    async def completed() -> bool:
        m = await scrape(client)
        return value(m, "viewer_outbox_delivered_total", sink="file") > value(before, "viewer_outbox_delivered_total",
                                                                              sink="file")
    # The in-app worker shares its queue with the run's other tests: a generous bound under load.
    assert await wait_until(completed, timeout=120)
    after = await scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("viewer_http_requests_total", method="POST", route="/v1/view/start", status="200") == 2
    assert delta("viewer_http_requests_total", method="POST", route="/v1/view/end", status="200") == 2
    assert delta("viewer_http_requests_total", method="POST", route="/v1/view/read", status="200") == 3
    assert delta("viewer_http_requests_total", method="POST", route="/v1/view/update", status="400") == 1
    assert delta("viewer_http_requests_total", method="PUT", route="/v1/collection/{collectionId}", status="200") == 1
    assert delta("viewer_http_request_duration_seconds_count", method="POST", route="/v1/view/read",
                 status_class="2xx") == 3
    assert delta("viewer_http_request_duration_seconds_count", method="POST", route="/v1/view/update",
                 status_class="4xx") == 1
    # Group commit: the four writes went through batches adding up to four items.
    assert delta("viewer_batch_size_sum", batcher="views") == 4
    assert 1 <= delta("viewer_batch_size_count", batcher="views") <= 4
    reads = sum(delta("viewer_cache_reads_total", result=r) for r in ("hit", "miss", "bypass"))
    assert reads == 3 and delta("viewer_cache_reads_total", result="hit") >= 1
    # The worker recomputed the scope, the course completed and its events were delivered.
    assert delta("viewer_worker_recomputes_total", result="done") >= 1
    assert delta("viewer_worker_lag_seconds_count") >= 1
    assert delta("viewer_worker_recompute_duration_seconds_count") >= 1
    assert delta("viewer_outbox_delivered_total", sink="file") >= 1
    for gauge in ("viewer_worker_dirty_scopes", "viewer_worker_oldest_dirty_age_seconds", "viewer_outbox_waiting",
                  "viewer_outbox_oldest_age_seconds", "viewer_cache_repairs_pending", "viewer_cache_degraded",
                  "viewer_db_pool_in_use"):
        assert (gauge, ()) in after and after[(gauge, ())] >= 0, gauge
    assert value(after, "viewer_database_up") == 1
    info = [labels for (name, labels) in after if name == "viewer_build_info"]
    assert len(info) == 1 and dict(info[0])["context_mode"] == "strict"
    assert dict(info[0])["backend"] in ("sqlite", "postgresql")


async def test_unknown_paths_share_one_label(client):
    before = await scrape(client)
    for i in range(3):
        assert (await client.get(f"/no/such/path/{i}")).status_code == 404
    after = await scrape(client)
    key = ("viewer_http_requests_total", (("method", "GET"), ("route", "unmatched"), ("status", "404")))
    assert after[key] - before.get(key, 0) == 3
    assert not any("/no/such" in str(labels) for _, labels in after)


@pytest.mark.settings(metrics=False)
async def test_metrics_can_be_turned_off(client):
    assert (await client.get("/metrics")).status_code == 404
    assert (await client.get("/health")).status_code == 200


async def test_two_serving_processes_report_their_sum(pg_url, redis_server, tmp_path):
    """`serve --workers 2`: whichever process answers /metrics reports every process's requests."""
    port = free_port()
    shared = tmp_path / "prom"
    shared.mkdir()
    (shared / "counter_1.db").write_bytes(b"stale")  # a previous run's file: must not be read
    env = clean_env(VIEWER_DATABASE_URL=pg_url, VIEWER_REDIS_URL=redis_server.url,
               VIEWER_REDIS_PREFIX=f"vt-metrics-{random.getrandbits(32):x}:", VIEWER_ACCESS_LOG="false",
               PROMETHEUS_MULTIPROC_DIR=str(shared))
    proc = subprocess.Popen([BIN, "serve", "--port", str(port), "--workers", "2"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_answering(base + "/health", proc)
        user = f"mp-{random.getrandbits(32):x}"
        n = 0

        async def one(i: int):
            # A new connection each time, so that both processes take some.
            async with httpx.AsyncClient(base_url=base) as c:
                r = await c.post("/v1/view/start", json={"request": {"userId": user, "contentId": f"c{i}",
                                                                     "collectionId": "col", "contextId": "b"}})
                assert r.status_code == 200

        pids: set = set()
        for _ in range(20):  # until both processes have served some (the second may start a little later)
            await asyncio.gather(*(one(n + i) for i in range(30)))
            n += 30
            pids = {f.stem.rsplit("_", 1)[1] for f in shared.glob("counter_*.db")}
            if len(pids) >= 2:
                break
        assert len(pids) >= 2, f"one process took every request: {pids}"
        assert "1" not in pids
        key = ("viewer_http_requests_total", (("method", "POST"), ("route", "/v1/view/start"), ("status", "200")))
        for _ in range(4):  # several scrapes, answered by either process: the same total
            async with httpx.AsyncClient(base_url=base) as c:
                got = samples((await c.get("/metrics")).text)
            assert got[key] == n
            assert got[("viewer_batch_size_sum", (("batcher", "views"),))] == n
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()[-3000:]


async def test_the_grafana_dashboard_shows_metrics_the_service_exports(client, user):
    """deploy/grafana/viewer-service.json: valid JSON, and every series it queries exists."""
    import json
    import re

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy/grafana/viewer-service.json").read_text())
    assert (await post(client, "/v1/view/start", userId=user, contentId="c1"))[0] == 200
    assert (await post(client, "/v1/view/read", userId=user, contentId=["c1"]))[0] == 200
    exported = {name for name, _ in await scrape(client)}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    used = {m for e in exprs for m in re.findall(r"\b(viewer_[a-z_]+)", e)}
    assert len(used) >= 15
    assert used <= exported, used - exported


async def test_a_worker_process_serves_its_own_metrics(tmp_path):
    """`viewer-service worker --metrics-port`: its recompute and outbox counters, on a port of its own."""
    port = free_port()
    env = clean_env(VIEWER_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    proc = subprocess.Popen([BIN, "worker", "--migrate", "--metrics-port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        r = await wait_answering(f"http://127.0.0.1:{port}/metrics", proc)
        got = samples(r.text)
        assert ("viewer_worker_recomputes_total", (("result", "done"),)) in got
        assert ("viewer_outbox_delivered_total", (("sink", "file"),)) in got
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()[-3000:]
    assert b"worker" in err and b"metrics=127.0.0.1:" in err
