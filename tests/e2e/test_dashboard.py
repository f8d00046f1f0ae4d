"""The dashboard in a real browser: headless Debian chromium driven by Playwright, against real
`viewer-service serve` processes (SQLite with VIEWER_AUTH=none, and PostgreSQL + Redis with JWT).

Screenshots of every page go to artifacts/dashboard/ (not committed; docs/dashboard.png is one)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest

from report_seed import seed_course, stored
from servers import free_port

BIN = Path(sys.executable).with_name("viewer-service")
CHROMIUM = os.environ.get("VIEWER_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard"
SECRET = "dashboard-test-secret-long-enough-for-hs256"
WAIT_MS = 20_000  # every wait in the browser is bounded
PHONE = {"width": 390, "height": 844}


def _token(sub: str, *roles: str) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 3600, "roles": list(roles)}, SECRET, algorithm="HS256")


def _run(coro):
    """Run a coroutine on a loop of its own (Playwright's sync API keeps one running here)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=120)


class Server:
    def __init__(self, tmp: Path, **env):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
        full.update(env)
        self.log = open(tmp / "serve.log", "wb")
        self.proc = subprocess.Popen([str(BIN), "serve", "--port", str(self.port)], cwd=tmp, env=full,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {(tmp / 'serve.log').read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.close()
        raise AssertionError("serve did not become healthy")

    def seed(self, headers=None, **kw):
        async def go():
            async with httpx.AsyncClient(base_url=self.base, timeout=30) as c:
                course = await seed_course(c, headers, **kw)
                end = time.monotonic() + 20
                while not await stored(c, course, headers):
                    assert time.monotonic() < end, "the worker did not store the progress"
                    await asyncio.sleep(0.05)
                return course
        return _run(go())

    def api(self, path, headers=None, **params):
        r = httpx.get(self.base + path, params=params, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()["result"]

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def browser(pg_url, redis_server):
    # The database fixtures first: they run asyncio loops, which cannot start inside Playwright's.
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium (or set VIEWER_TEST_CHROMIUM)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    """The embedded default, as `scripts/serve` runs it: SQLite, no authentication."""
    tmp = tmp_path_factory.mktemp("dash-open")
    s = Server(tmp, VIEWER_DATABASE_URL=f"sqlite:///{tmp}/viewer.db", VIEWER_WORKER_POLL_SECONDS="0.05")
    yield s
    s.close()


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory, pg_url, redis_server):
    """Production: PostgreSQL + Redis, tokens checked."""
    tmp = tmp_path_factory.mktemp("dash-jwt")
    s = Server(tmp, VIEWER_DATABASE_URL=pg_url, VIEWER_REDIS_URL=redis_server.url,
               VIEWER_REDIS_PREFIX=f"dash-{uuid.uuid4().hex[:6]}:", VIEWER_WORKER_IN_SERVE="true",
               VIEWER_WORKER_POLL_SECONDS="0.05", VIEWER_AUTH="jwt", VIEWER_JWT_SECRET=SECRET)
    yield s
    s.close()


class Page:
    """A browser page that records console errors and failed script loads."""

    def __init__(self, browser, base: str, token: str | None = None, viewport=None):
        self.ctx = browser.new_context(viewport=viewport or {"width": 1280, "height": 900}, accept_downloads=True)
        if token:
            self.ctx.add_init_script(f"sessionStorage.setItem('viewer-token', {json.dumps(token)})")
        self.page = self.ctx.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, path: str):
        self.page.goto(self.base + path)
        self.page.wait_for_selector("body[data-ready=true]", state="attached", timeout=WAIT_MS)
        return self.page

    def shot(self, name: str):
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def close(self):
        self.ctx.close()


@pytest.fixture
def pages(browser):
    opened = []

    def make(base, token=None, viewport=None):
        p = Page(browser, base, token, viewport)
        opened.append(p)
        return p

    yield make
    for p in opened:
        p.close()


def _painted(page, canvas_id: str) -> int:
    """How many pixels of the canvas hold something (a chart that rendered has many)."""
    return page.evaluate("""id => {
        const c = document.getElementById(id);
        if (!c || !c.width || !c.height) return 0;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
        return n;
    }""", canvas_id)


def _roster_users(page) -> list[str]:
    return page.eval_on_selector_all("#roster tbody tr[data-user]", "rows => rows.map(r => r.dataset.user)")


def test_context_page_shows_the_api_numbers_and_draws_every_chart(open_server, pages):
    c = open_server.seed()
    stats = open_server.api(f"/v1/report/context/{c.context}/stats")
    p = pages(open_server.base)
    page = p.open(f"/dashboard/context/{c.context}")
    assert p.text('[data-stat="enrolled"]') == str(stats["enrolled"]) == "3"
    for k in ("0", "1", "2"):
        assert p.text(f'[data-stat="status-{k}"]') == str(stats["byStatus"][k])
    for chart in ("chart-status", "chart-progress", "chart-days", "chart-scores"):
        assert _painted(page, chart) > 500, chart
    assert page.evaluate("() => ['chart-status','chart-progress','chart-days','chart-scores']"
                         ".every(id => !!Chart.getChart(document.getElementById(id)))")
    # The chart data is the API's.
    assert page.evaluate("() => Chart.getChart(document.getElementById('chart-progress')).data.datasets[0].data") == \
        [b["count"] for b in stats["progressHistogram"]]
    roster = open_server.api(f"/v1/report/context/{c.context}", limit=25)
    assert _roster_users(page) == [e["userId"] for e in roster["enrolments"]]
    row = page.locator(f'#roster tr[data-user="{c.half}"]')
    assert row.locator('[role="progressbar"]').get_attribute("aria-valuenow") == "25"
    assert "1/4" in row.inner_text()
    csp = httpx.get(open_server.base + f"/dashboard/context/{c.context}").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    p.shot("context")
    assert p.errors == []


def test_context_page_on_a_phone(open_server, pages):
    c = open_server.seed()
    p = pages(open_server.base, viewport=PHONE)
    page = p.open(f"/dashboard/context/{c.context}")
    assert _painted(page, "chart-status") > 500
    # Nothing but the roster table (which scrolls inside its box) is wider than the screen.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
    p.shot("context-phone")
    assert p.errors == []


def test_paging_sorting_search_and_the_csv_button(open_server, pages):
    c = open_server.seed()
    extra = sorted(f"learner-{i:02d}-{c.context}" for i in range(22))

    async def enrol():
        async with httpx.AsyncClient(base_url=open_server.base) as client:
            for u in extra:
                r = await client.post("/v1/enrol", json={"request": {"userId": u, "collectionId": c.collection,
                                                                     "contextId": c.context}})
                assert r.status_code == 200
    _run(enrol())
    p = pages(open_server.base)
    page = p.open(f"/dashboard/context/{c.context}")
    page.select_option("#page-size", "10")
    page.wait_for_function("() => document.querySelectorAll('#roster tbody tr[data-user]').length === 10",
                           timeout=WAIT_MS)
    api_pages, cursor = [], None
    while True:
        res = open_server.api(f"/v1/report/context/{c.context}", limit=10, **({"cursor": cursor} if cursor else {}))
        api_pages.append([e["userId"] for e in res["enrolments"]])
        cursor = res["nextCursor"]
        if not cursor:
            break
    assert len(api_pages) == 3
    shown = [_roster_users(page)]
    for n in (2, 3):
        page.click("#next")
        page.wait_for_function(f"() => document.getElementById('page-no').textContent === 'page {n}'",
                               timeout=WAIT_MS)
        page.wait_for_function("first => document.querySelector('#roster tbody tr[data-user]')?.dataset.user !== first",
                               arg=shown[-1][0], timeout=WAIT_MS)
        shown.append(_roster_users(page))
    assert shown == api_pages and page.locator("#next").is_disabled()
    page.click("#prev")
    page.wait_for_function("() => document.getElementById('page-no').textContent === 'page 2'", timeout=WAIT_MS)
    page.wait_for_function("u => document.querySelector('#roster tbody tr[data-user]')?.dataset.user === u",
                           arg=api_pages[1][0], timeout=WAIT_MS)
    # Sort the page by progress, highest first.
    page.click("#page-size")
    page.select_option("#page-size", "100")
    page.wait_for_function("() => document.querySelectorAll('#roster tbody tr[data-user]').length === 26",
                           timeout=WAIT_MS)
    page.click('th[data-sort="progress"]')
    page.click('th[data-sort="progress"]')
    values = page.eval_on_selector_all('#roster tbody [role="progressbar"]', "bs => bs.map(b => +b.getAttribute('aria-valuenow'))")
    assert values == sorted(values, reverse=True) and values[0] == 100
    # Search by userId prefix (the server filters).
    page.fill("#search", c.half)
    page.wait_for_function("() => document.querySelectorAll('#roster tbody tr[data-user]').length === 1",
                           timeout=WAIT_MS)
    assert _roster_users(page) == [c.half]
    page.fill("#search", "")
    page.wait_for_function("() => document.querySelectorAll('#roster tbody tr[data-user]').length === 26",
                           timeout=WAIT_MS)
    with page.expect_download(timeout=WAIT_MS) as d:
        page.click("#csv")
    text = Path(d.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert d.value.suggested_filename == f"{c.context}_roster.csv"
    assert sorted(r["userId"] for r in rows) == sorted([c.done, c.half, c.none, c.gone, *extra])
    assert p.errors == []


def test_learner_page_shows_progress_units_scores_and_recent(open_server, pages):
    c = open_server.seed()
    report = open_server.api(f"/v1/report/learner/{c.half}")
    [e] = report["enrolments"]
    p = pages(open_server.base)
    page = p.open(f"/dashboard/learner/{c.half}")
    card = page.locator(f'article.enrolment[data-collection="{c.collection}"]')
    assert card.locator(':scope > [role="progressbar"]').get_attribute("aria-valuenow") == str(e["progress"]) == "25"
    units = card.locator(".unit")
    assert units.count() == 2 and "Unit one" in units.nth(0).locator(".unit-head").inner_text()
    assert units.nth(0).locator('.unit-head [role="progressbar"]').get_attribute("aria-valuenow") == "50"
    # Each unit lists its contents with their status.
    assert units.nth(0).locator('.contents li[data-content="a"]').get_attribute("data-status") == "2"
    assert units.nth(1).locator('.contents li[data-content="quiz"]').get_attribute("data-status") == "1"
    assert "1/4" in card.locator('.score[data-content="quiz"]').inner_text()
    assert "Intro video" in p.text("#lr-recent")
    p.shot("learner")
    p2 = pages(open_server.base, viewport=PHONE)
    p2.open(f"/dashboard/learner/{c.done}")
    p2.shot("learner-phone")
    assert p.errors == [] and p2.errors == []


def test_home_lists_contexts(open_server, pages):
    c = open_server.seed()
    p = pages(open_server.base)
    page = p.open("/dashboard")
    page.fill("#pick-prefix", c.context)
    page.click("#pick button")
    page.wait_for_selector(f'#contexts a[href="/dashboard/context/{c.context}"]', timeout=WAIT_MS)
    p.shot("home")
    assert p.errors == []


def test_with_tokens_a_learner_sees_only_their_own_pages(jwt_server, pages):
    admin = {"Authorization": "Bearer " + _token("admin-1", "admin")}
    c = jwt_server.seed(admin)
    learner = _token(c.half)
    p = pages(jwt_server.base, learner)
    page = p.open("/dashboard")
    page.wait_for_url(f"**/dashboard/learner/{c.half}", timeout=WAIT_MS)  # home sends a learner to their page
    page.wait_for_selector("article.enrolment", timeout=WAIT_MS)
    assert "signed in as " + c.half in p.text("#who")
    for path in (f"/dashboard/learner/{c.done}", f"/dashboard/context/{c.context}"):
        p.open(path)
        assert page.locator("#error").get_attribute("data-status") == "403", path
        assert page.locator("#error a").get_attribute("href") == f"/dashboard/learner/{c.half}"
        assert page.locator("#learner").is_hidden() and page.locator("#context").is_hidden()
        assert c.done not in page.locator("main").inner_text().replace(f"/dashboard/learner/{c.done}", "")
    p.shot("learner-forbidden")
    # A mentor sees the context, with the API's numbers, on PostgreSQL + Redis.
    mentor = _token("mentor-1", "COURSE_MENTOR")
    stats = jwt_server.api(f"/v1/report/context/{c.context}/stats", {"Authorization": "Bearer " + mentor})
    m = pages(jwt_server.base, mentor)
    mp = m.open(f"/dashboard/context/{c.context}")
    assert m.text('[data-stat="status-2"]') == str(stats["byStatus"]["2"]) == "1"
    assert _painted(mp, "chart-scores") > 500
    # No token: the page asks for one, and signing in with the form works.
    anon = pages(jwt_server.base)
    ap = anon.open(f"/dashboard/context/{c.context}")
    assert ap.locator("#error").get_attribute("data-status") == "401" and ap.locator("#token-form").is_visible()
    ap.fill("#token", mentor)
    ap.click("#token-form button")
    ap.wait_for_selector('[data-stat="enrolled"]:text("3")', timeout=WAIT_MS)
    assert m.errors == []
    # The learner page logs the 403 answers as failed loads; nothing else may fail.
    assert all("403" in e for e in p.errors), p.errors
