"""Helpers for the collection progress tests."""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from viewer_service.adapters.db.tables import enrolment, scope_dirty, user_activity_agg


async def post(client, path: str, **request):
    r = await client.post(path, json={"request": request})
    return r.status_code, r.json()


async def put_collection(client, cid: str, **doc):
    r = await client.put(f"/v1/collection/{cid}", json={"request": {"name": f"Course {cid}", **doc}})
    assert r.status_code == 200, r.json()


async def view(client, user, content, collection, context=None, *, end=True, ts=None):
    keys = {"userId": user, "contentId": content, "collectionId": collection}
    if context:
        keys["contextId"] = context
    if ts is not None:
        keys["ts"] = ts
    st, body = await post(client, "/v1/view/start", **keys)
    assert st == 200, body
    if end:
        st, body = await post(client, "/v1/view/end", **keys)
        assert st == 200, body


async def summary(client, user, collection, context=None) -> dict:
    req = {"userId": user, "collectionId": collection}
    if context:
        req["contextId"] = context
    st, body = await post(client, "/v1/summary/read", **req)
    assert st == 200, body
    return body["result"]


async def stored_enrolment(app, user, collection, context=None):
    views = app.state.app.views
    async with views.reader.connect() as conn:
        return (await conn.execute(sa.select(enrolment).where(
            enrolment.c.user_id == user, enrolment.c.collection_id == collection,
            enrolment.c.context_id == (context or collection)))).first()


async def stored_aggs(app, user) -> list:
    async with app.state.app.views.reader.connect() as conn:
        return (await conn.execute(sa.select(user_activity_agg).where(user_activity_agg.c.user_id == user))).all()


async def queue_empty(app, user) -> bool:
    async with app.state.app.views.reader.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(scope_dirty)
                                   .where(scope_dirty.c.user_id == user))).scalar() == 0


def events_for(app, user) -> list[dict]:
    path = app.state.app.settings.event_sink.removeprefix("file:")
    try:
        with open(path, "rb") as f:
            lines = [orjson.loads(x) for x in f if x.strip()]
    except FileNotFoundError:
        return []
    return [e for e in lines if user in orjson.dumps(e).decode()]
