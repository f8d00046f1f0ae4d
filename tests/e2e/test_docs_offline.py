"""/docs and /redoc work with no request leaving the machine: their assets come from the package.

Two checks: every asset the pages name is local and served (in-process, both backends); and a
real browser (Debian's Chromium through Playwright) renders both pages from a real server while
every request to anywhere else is refused and recorded."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from helpers import clean_env
from servers import free_port

BIN = Path(sys.executable).with_name("viewer-service")
CHROMIUM = os.environ.get("VIEWER_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_every_asset_of_the_docs_is_local_and_served(client, page):
    r = await client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", r.text)
    urls += re.findall(r"""(?:url|spec-url)\s*[:=]\s*["']([^"']+)["']""", r.text)
    assert any(u.endswith(".js") for u in urls), r.text
    for u in urls:
        assert not urlsplit(u).netloc and not u.startswith("//"), f"{page} loads {u} from elsewhere"
        got = await client.get(u)
        assert got.status_code == 200, u
        if u.endswith(".js"):
            assert "javascript" in got.headers["content-type"] and len(got.content) > 100_000, u
        if u.endswith(".css"):
            assert got.headers["content-type"].startswith("text/css"), u


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    """A real server on the embedded default, with nothing but its own assets to serve."""
    port = free_port()
    cwd = tmp_path_factory.mktemp("docs")
    proc = subprocess.Popen([BIN, "serve", "--port", str(port)], cwd=cwd, env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # bounded: 60 s
            assert proc.poll() is None, "server exited"
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("page, rendered", [
    ("/docs", ".swagger-ui .opblock"),  # an operation of the API, drawn by Swagger UI
    ("/redoc", "[data-section-id^='tag/']"),  # a section of the API, drawn by ReDoc
])
async def test_docs_render_in_a_browser_with_no_outside_request(docs_server, page, rendered):
    from playwright.async_api import async_playwright

    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium, or set VIEWER_TEST_CHROMIUM)"
    local = urlsplit(docs_server).netloc
    outside: list[str] = []
    served: list[str] = []

    async def route(r):
        u = urlsplit(r.request.url)
        if u.scheme in ("data", "blob") or u.netloc == local:
            served.append(r.request.url)
            await r.continue_()
        else:
            outside.append(r.request.url)
            await r.abort()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = await browser.new_context()
            await context.route("**/*", route)
            p = await context.new_page()
            errors: list[str] = []
            p.on("pageerror", lambda e: errors.append(str(e)))
            blocked: list[str] = []  # what the page's content security policy kept from leaving
            p.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
            await p.goto(docs_server + page, timeout=30_000)
            await p.wait_for_selector(rendered, timeout=30_000)
            await asyncio.sleep(0.5)  # let late requests (fonts, images) show up in the record
            title = await p.title()
        finally:
            await browser.close()
    assert outside == [], f"{page} tried to reach {outside}"
    assert errors == []
    # Only ReDoc's footer logo (on Redocly's CDN) is held back; nothing the page needs.
    assert all("cdn.redoc.ly/redoc/logo-mini.svg" in b for b in blocked), blocked
    assert "viewer-service" in title
    assert any(u.endswith("/openapi.json") for u in served)
