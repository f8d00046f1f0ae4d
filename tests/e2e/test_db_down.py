"""With the database unreachable the service answers 503 in the envelope, never 500."""

import httpx
import pytest

from servers import free_port
from viewer_service.api.app import create_app
from viewer_service.config import Settings


@pytest.fixture
async def down_client():
    app = create_app(Settings(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://viewer") as c:
            yield c


async def test_writes_and_reads_get_503(down_client):
    for op, body in [("start", {"contentId": "c"}), ("end", {"contentId": "c"}), ("read", {"contentId": ["c"]})]:
        r = await down_client.post(f"/v1/view/{op}", json={"request": {"userId": "u", **body}})
        assert r.status_code == 503, r.text
        assert r.json()["params"]["err"] == "SERVICE_UNAVAILABLE"
        assert r.headers["retry-after"] == "2"
    r = await down_client.get("/health/service")
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert r.json()["result"]["services"][0] == {**r.json()["result"]["services"][0], "name": "database", "healthy": False}
    assert (await down_client.get("/health")).status_code == 200
