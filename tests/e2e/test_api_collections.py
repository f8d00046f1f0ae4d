"""The collection catalog through HTTP, on SQLite and on PostgreSQL + Redis."""

import time
import uuid

import httpx
import jwt
import pytest

from remote_catalog import RemoteCatalog
from servers import free_port
from viewer_service.api.app import create_app
from viewer_service.domain.collections import COLLECTION_MIME

SECRET = "test-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def cid() -> str:
    return f"do_{uuid.uuid4().hex[:12]}"


def unit(uid, *children, optional=None):
    node = {"identifier": uid, "mimeType": COLLECTION_MIME, "children": list(children)}
    if optional is not None:
        node["relationalMetadata"] = {"optional": optional}
    return node


def leaf(cid, optional=None):
    node = {"identifier": cid, "mimeType": "video/mp4", "name": f"content {cid}"}
    if optional is not None:
        node["relationalMetadata"] = {"optional": optional}
    return node


def course(cid, **fields):
    return {"identifier": cid, "name": "Course", "description": "about", "appIcon": "https://img/x.png",
            "mimeType": COLLECTION_MIME, "channel": "ch1",
            "children": [unit("u1", leaf("a"), leaf("b", optional=True)), unit("u2", leaf("c"), leaf("a"))],
            **fields}


async def put(client, cid, doc, **kw):
    r = await client.put(f"/v1/collection/{cid}", json={"request": doc}, **kw)
    return r.status_code, r.json()


async def get(client, cid, **kw):
    r = await client.get(f"/v1/collection/{cid}", **kw)
    return r.status_code, r.json()


def _err(status_body):
    status, body = status_body
    assert body["params"]["status"] == "failed" and body["responseCode"] != "OK"
    return status, body["params"]["err"], body["result"]["field"]


async def test_put_then_get_returns_the_document_and_what_was_derived(client, cid):
    doc = course(cid)
    status, body = await put(client, cid, doc)
    assert status == 200 and body["id"] == "api.collection.put" and body["responseCode"] == "OK"
    status, got = await get(client, cid)
    assert status == 200 and got["id"] == "api.collection.get"
    r = got["result"]
    assert r == {**body["result"], "updatedAt": r["updatedAt"]}
    assert (r["collectionId"], r["name"], r["description"], r["appIcon"]) == (cid, "Course", "about", "https://img/x.png")
    assert r["leafNodes"] == ["a", "b", "c"] and r["requiredLeafNodes"] == ["a", "c"] and r["leafNodesCount"] == 2
    assert r["units"] == {"u1": ["a"], "u2": ["c", "a"]} and list(r["units"]) == ["u1", "u2"]
    assert r["document"] == doc  # as sent, unknown fields too
    assert isinstance(r["updatedAt"], int) and abs(r["updatedAt"] - time.time() * 1000) < 60_000


async def test_put_replaces_and_given_leaf_nodes_win(client, cid):
    await put(client, cid, course(cid))
    status, body = await put(client, cid, {"name": "v2", "leafNodes": ["x", "y"], "children": [unit("u", leaf("x"), leaf("y", "true"))]})
    assert status == 200
    _, got = await get(client, cid)
    r = got["result"]
    assert (r["name"], r["leafNodes"], r["requiredLeafNodes"], r["leafNodesCount"]) == ("v2", ["x", "y"], ["x"], 1)
    assert r["units"] == {"u": ["x"]} and r["description"] is None and r["document"]["name"] == "v2"


async def test_a_collection_without_children(client, cid):
    assert (await put(client, cid, {"name": "flat", "leafNodes": ["a", "b"]}))[0] == 200
    r = (await get(client, cid))[1]["result"]
    assert (r["leafNodes"], r["requiredLeafNodes"], r["units"]) == (["a", "b"], ["a", "b"], {})


async def test_unknown_collection_is_404_in_the_envelope(client, cid):
    status, body = await get(client, cid, headers={"x-request-id": "m-9"})
    assert _err((status, body)) == (404, "COLLECTION_NOT_FOUND", "collectionId")
    assert body["id"] == "api.collection.get" and body["responseCode"] == "RESOURCE_NOT_FOUND"
    assert body["params"]["msgid"] == "m-9"


@pytest.mark.parametrize("request_body, expected", [
    (None, (400, "MISSING_FIELD", "request")),
    ([], (400, "INVALID_TYPE", "request")),
    ({"leafNodes": "a"}, (400, "INVALID_TYPE", "request.leafNodes")),
    ({"leafNodes": [""]}, (400, "EMPTY_FIELD", "request.leafNodes.0")),
    ({"leafNodes": ["x" * 257]}, (400, "FIELD_TOO_LONG", "request.leafNodes.0")),
    ({"leafNodes": ["bad\nid"]}, (400, "INVALID_VALUE", "request.leafNodes.0")),
    ({"name": 5}, (400, "INVALID_TYPE", "request.name")),
    ({"children": "u1"}, (400, "INVALID_TYPE", "request.children")),
    ({"children": [{"mimeType": COLLECTION_MIME}]}, (400, "MISSING_FIELD", "request.children.0.identifier")),
    ({"children": [unit("u", {"identifier": 7})]}, (400, "INVALID_TYPE", "request.children.0.children.0.identifier")),
    ({"children": [leaf("a", optional="maybe")]}, (400, "INVALID_VALUE", "request.children.0.relationalMetadata.optional")),
    ({"children": [leaf("a", optional=1)]}, (400, "INVALID_TYPE", "request.children.0.relationalMetadata.optional")),
    ({"identifier": "another"}, (400, "INVALID_VALUE", "request.identifier")),
    ({"name": "nul \u0000"}, (400, "INVALID_VALUE", "request.name")),
])
async def test_bad_collections_are_rejected_and_store_nothing(client, cid, request_body, expected):
    body = {} if request_body is None else {"request": request_body}
    r = await client.put(f"/v1/collection/{cid}", json=body)
    assert _err((r.status_code, r.json())) == expected
    assert r.json()["id"] == "api.collection.put"
    assert (await get(client, cid))[0] == 404


async def test_numbers_beyond_64_bits_and_deep_nesting_are_rejected(client, cid):
    r = await client.put(f"/v1/collection/{cid}", content=b'{"request": {"name": "n", "size": 123456789012345678901234567890}}',
                         headers={"content-type": "application/json"})
    assert _err((r.status_code, r.json())) == (400, "INVALID_VALUE", "request.size")
    node = leaf("deep")
    for i in range(40):
        node = unit(f"u{i}", node)
    status, body = await put(client, cid, {"children": [node]})
    assert _err((status, body)) == (400, "INVALID_VALUE", "request.children.0" + ".children.0" * 32)
    assert (await get(client, cid))[0] == 404


async def test_bad_collection_ids_in_the_path(client):
    status, body = await get(client, "x" * 257)
    assert _err((status, body)) == (400, "FIELD_TOO_LONG", "collectionId")
    status, body = await put(client, "bad%01id", {"name": "n"})
    assert _err((status, body)) == (400, "INVALID_VALUE", "collectionId")
    assert body["id"] == "api.collection.put"


@pytest.mark.settings(max_body_bytes=2000)
async def test_documents_over_the_body_limit_are_413(client, cid):
    status, body = await put(client, cid, {"name": "n", "leafNodes": [f"content-{i}" for i in range(200)]})
    assert _err((status, body)) == (413, "BODY_TOO_LARGE", "request") and body["id"] == "api.collection.put"
    r = await client.put(f"/v1/collection/{cid}", content=b"name=n", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.json()["id"] == "api.collection.put"
    assert (await get(client, cid))[0] == 404


async def test_openapi_documents_the_collection_body(client):
    doc = (await client.get("/openapi.json")).json()
    body = doc["paths"]["/v1/collection/{collectionId}"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CollectionRequest"}
    assert {"leafNodes", "children", "name"} <= set(doc["components"]["schemas"]["CollectionBody"]["properties"])
    assert "get" in doc["paths"]["/v1/collection/{collectionId}"]


# -- auth ----------------------------------------------------------------------


def token(sub: str, **claims) -> dict:
    body = {"sub": sub, "exp": int(time.time()) + 600, **claims}
    return {"x-authenticated-user-token": jwt.encode(body, SECRET, algorithm="HS256")}


@pytest.mark.settings(auth="jwt", jwt_secret=SECRET)
async def test_with_jwt_only_admin_or_service_roles_write_the_catalog(client, cid):
    assert _err(await put(client, cid, course(cid))) == (401, "UNAUTHORIZED", "x-authenticated-user-token")
    assert _err(await put(client, cid, course(cid), headers=token("learner-1"))) == (403, "FORBIDDEN", "request")
    assert (await get(client, cid, headers=token("learner-1")))[0] == 404  # nothing was written
    assert (await put(client, cid, course(cid), headers=token("lms", roles=["service"])))[0] == 200
    assert (await put(client, cid, course(cid), headers=token("ops", realm_access={"roles": ["admin"]})))[0] == 200
    # Any valid token reads; no token does not.
    assert (await get(client, cid, headers=token("learner-1")))[0] == 200
    assert _err(await get(client, cid)) == (401, "UNAUTHORIZED", "x-authenticated-user-token")


# -- VIEWER_CATALOG_URL ----------------------------------------------------------


@pytest.fixture(scope="module")
def remote():
    server = RemoteCatalog()
    yield server
    server.close()


async def _client_for(settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://viewer") as c:
            yield c


@pytest.fixture
async def remote_client(settings, remote):
    async for c in _client_for(settings.model_copy(update={"catalog_url": remote.url + "/"})):
        yield c


async def test_unknown_collections_are_fetched_once_and_stored(remote_client, client, remote, cid):
    remote.answers[cid] = course(cid)
    status, body = await get(remote_client, cid)
    assert status == 200 and body["result"]["requiredLeafNodes"] == ["a", "c"]
    assert body["result"]["document"] == course(cid)
    assert (await get(remote_client, cid))[0] == 200
    assert remote.hits.count(cid) == 1
    # Stored like a PUT: a service without the remote catalog knows it now.
    status, body = await get(client, cid)
    assert status == 200 and body["result"]["units"] == {"u1": ["a"], "u2": ["c", "a"]}


async def test_a_registered_collection_is_not_fetched(remote_client, remote, cid):
    remote.answers[cid] = course(cid, name="remote")
    assert (await put(remote_client, cid, course(cid, name="local")))[0] == 200
    assert (await get(remote_client, cid))[1]["result"]["name"] == "local"
    assert cid not in remote.hits


async def test_ids_are_escaped_in_the_remote_url(remote_client, remote):
    cid = f"do {uuid.uuid4().hex[:6]}?x=1#y"
    remote.answers[cid] = {"identifier": cid, "leafNodes": ["a"]}
    status, body = await get(remote_client, cid.replace("?", "%3F").replace("#", "%23").replace(" ", "%20"))
    assert status == 200 and body["result"]["collectionId"] == cid


@pytest.mark.parametrize("answer", [
    None,  # 404
    (500, b'{"responseCode": "SERVER_ERROR"}', 0),
    (200, b"not json", 0),
    (200, b'{"result": {}}', 0),
    (200, b'{"result": {"content": {"children": "nope"}}}', 0),
    (200, b'{"result": {"content": {"identifier": "some-other-id"}}}', 0),
    (200, b'{"result": {"content": {"name": "n", "size": 123456789012345678901234567890}}}', 0),
])
async def test_remote_failures_mean_unknown_never_500(remote_client, remote, cid, answer):
    if answer is not None:
        remote.answers[cid] = answer
    status, body = await get(remote_client, cid)
    assert _err((status, body)) == (404, "COLLECTION_NOT_FOUND", "collectionId")
    assert remote.hits.count(cid) == 1


async def test_an_unreachable_remote_means_unknown(settings, cid):
    async for c in _client_for(settings.model_copy(update={"catalog_url": f"http://127.0.0.1:{free_port()}/h"})):
        assert _err(await get(c, cid)) == (404, "COLLECTION_NOT_FOUND", "collectionId")
