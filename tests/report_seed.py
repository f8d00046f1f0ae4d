"""A small course with known numbers, written through the HTTP API (shared by the report API
tests and the dashboard's browser tests).

Collection: units u1 (a, b) and u2 (c, quiz). Context: a batch offering it. Learners:
  done  - completed everything, quiz best 3/4 (75 %)
  half  - completed a, quiz best 1/4 (25 %): 25 % progress, in progress
  none  - enrolled, nothing consumed
  gone  - enrolled, completed a, then unenrolled
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

COLLECTION_MIME = "application/vnd.ekstep.content-collection"


def _leaf(cid: str, name: str) -> dict:
    return {"identifier": cid, "name": name, "mimeType": "video/mp4"}


def _unit(uid: str, name: str, *children) -> dict:
    return {"identifier": uid, "name": name, "mimeType": COLLECTION_MIME, "children": list(children)}


def _assess(qid: str, ets: int, score: float, maxscore: float = 1) -> dict:
    return {"eid": "ASSESS", "ets": ets, "edata": {"score": score, "duration": 3, "resvalues": [{"1": "B"}],
                                                   "item": {"id": qid, "maxscore": maxscore, "type": "mcq",
                                                            "title": qid, "desc": "", "params": [{"1": "A"}]}}}


@dataclass
class Course:
    collection: str
    context: str
    done: str
    half: str
    none: str
    gone: str

    @property
    def active_users(self) -> list[str]:
        return [self.done, self.half, self.none]


async def _ok(r) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


async def _post(client, path: str, headers=None, **request) -> dict:
    return await _ok(await client.post(path, json={"request": request}, headers=headers))


async def seed_course(client, headers=None, tag: str | None = None) -> Course:
    """Writes the course; `headers` must carry an admin token when the service checks tokens."""
    tag = tag or uuid.uuid4().hex[:8]
    c = Course(f"course-{tag}", f"batch-{tag}", f"done-{tag}", f"half-{tag}", f"none-{tag}", f"gone-{tag}")
    doc = {"name": f"Course {tag}", "leafNodes": ["a", "b", "c", "quiz"],
           "children": [_unit("u1", "Unit one", _leaf("a", "Intro video"), _leaf("b", "Reading")),
                        _unit("u2", "Unit two", _leaf("c", "Second video"), _leaf("quiz", "Quiz"))]}
    await _ok(await client.put(f"/v1/collection/{c.collection}", json={"request": doc}, headers=headers))
    await _ok(await client.put(f"/v1/context/{c.context}", json={"request": {"type": "batch",
                                                                             "collectionIds": [c.collection]}},
                               headers=headers))
    scope = {"collectionId": c.collection, "contextId": c.context}
    for u in (c.done, c.half, c.none, c.gone):
        await _post(client, "/v1/enrol", headers, userId=u, **scope)
    now = time.time_ns() // 1_000_000 - 60_000

    async def view(u, content):
        for op in ("start", "end"):
            await _post(client, f"/v1/view/{op}", headers, userId=u, contentId=content, **scope)

    for content in ("a", "b", "c", "quiz"):
        await view(c.done, content)
    await _post(client, "/v1/assessment/submit", headers, userId=c.done, contentId="quiz", **scope,
                assessments=[_assess("q1", now, 3, 4)])
    await view(c.half, "a")
    await _post(client, "/v1/assessment/submit", headers, userId=c.half, contentId="quiz", **scope,
                assessments=[_assess("q1", now, 1, 4)])
    await view(c.gone, "a")
    await _post(client, "/v1/unenrol", headers, userId=c.gone, **scope)
    return c


async def stored(client, c: Course, headers=None) -> bool:
    """The worker has stored every learner's progress (what reports read)."""
    r = await client.get(f"/v1/report/context/{c.context}", headers=headers)
    if r.status_code != 200:
        return False
    rows = {e["userId"]: e for e in r.json()["result"]["enrolments"]}
    return (len(rows) == 4 and rows[c.done]["status"] == 2 and rows[c.half]["progress"] == 25
            and rows[c.done]["unitProgress"] == {"u1": 100, "u2": 100})
