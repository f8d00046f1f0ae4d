"""The seed's "Config Modes" tables as acceptance tests, through the HTTP API, on SQLite and on
PostgreSQL + Redis (docs/modes.md).

Every "API responses for various other actions" row is a test (or a parametrized case) named
after its mode and row number; the "Entry in DB" tables are checked through reads. Client
times (`ts`, `enrolledDate`) express "after 1 month" (30 days) and "after 3 months" (91 days).
The carry-forward contexts use the seed's business rule: completed in the last 3 months (90
days) or within the context's dates."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from helpers import now_ms
from progress_helpers import events_for, post, put_collection, queue_empty, stored_enrolment, summary
from servers import create_database, drop_database
from conftest import migrate, wait_until

from viewer_service.domain.scope import ContextMode

DAY = 86_400_000
MONTH, THREE_MONTHS = 30 * DAY, 91 * DAY
SDA, DDA, TDA = "single-digit-addition", "double-digit-addition", "triple-digit-addition"
C1, C2 = "class-1-maths", "class-2-maths"
SEED_RULE = {"windowDays": 90, "withinContextDates": True}
# The copy tables run with no worker: every row must hold from the writes' own transactions,
# with no waiting between a write and the read (issue 12).
NO_WORKER = pytest.mark.settings(worker_in_serve=False)


# -- instances in content and collection mode: each has its own database -----------------------

@pytest.fixture(scope="session")
def mode_databases(tmp_path_factory, request):
    made: dict = {}

    def get(backend: str, mode: str) -> str:
        if (backend, mode) not in made:
            if backend == "sqlite":
                url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('modes') / f'{mode}.db'}"
            else:
                admin.append(request.getfixturevalue("pg_server").admin_dsn)
                dsn = create_database(admin[0])
                dropped.append(dsn)
                url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
            migrate(url)
            made[(backend, mode)] = url
        return made[(backend, mode)]

    admin: list[str] = []
    dropped: list[str] = []
    yield get
    for dsn in dropped:
        drop_database(admin[0], dsn)


@pytest.fixture
def settings(request, backend, mode_databases, settings):  # noqa: F811 - extends conftest's
    mode = getattr(request, "param", None) or getattr(request.node.get_closest_marker("mode"), "args", [None])[0]
    if mode in (None, "strict"):
        return settings
    return settings.model_copy(update={"context_mode": ContextMode(mode), "database_url": mode_databases(backend, mode)})


@pytest.fixture
def rahul() -> str:
    return f"rahul-{uuid.uuid4().hex[:8]}"


# -- helpers ------------------------------------------------------------------------------

async def complete(client, user, content, collection=None, context=None, ts=None):
    keys = {"userId": user, "contentId": content}
    if collection:
        keys["collectionId"] = collection
    if context:
        keys["contextId"] = context
    if ts is not None:
        keys["ts"] = ts
    for op in ("start", "end"):
        st, body = await post(client, f"/v1/view/{op}", **keys)
        assert st == 200, body


async def status(client, user, content, collection=None, context=None, *, fields=None) -> dict:
    """What a player asks when the learner opens `content` (from search: no collection)."""
    req = {"userId": user, "contentId": [content]}
    if collection:
        req["collectionId"] = collection
    if context:
        req["contextId"] = context
    if fields:
        req["fields"] = fields
    st, body = await post(client, "/v1/view/read", **req)
    assert st == 200, body
    [c] = body["result"]["contents"]
    return c


async def opens(client, user, content, collection=None, context=None) -> int:
    return (await status(client, user, content, collection, context))["status"]


async def context(client, cid, collections, start=None, end=None, carry=None):
    req = {"type": "batch", "collectionIds": collections}
    if start is not None:
        req["startDate"] = start
    if end is not None:
        req["endDate"] = end
    if carry is not None:
        req["carryForward"] = carry
    r = await client.put(f"/v1/context/{cid}", json={"request": req})
    assert r.status_code == 200, r.json()


async def enrol(client, user, collection, ctx, at) -> dict:
    st, body = await post(client, "/v1/enrol", userId=user, collectionId=collection, contextId=ctx, enrolledDate=at)
    assert st == 200, body
    return body["result"]


COMPLETE, NOT_STARTED = 2, 0


# -- Strict context mode ----------------------------------------------------------------------

@pytest.fixture
async def strict_story(client, rahul):
    """Rahul completes single-digit-addition in batch-1 of class-1-maths, and double-digit-addition
    on its own."""
    await put_collection(client, C1, leafNodes=[SDA, DDA])
    await context(client, "batch-1", [C1])
    await enrol(client, rahul, C1, "batch-1", now_ms() - 10 * DAY)
    await complete(client, rahul, SDA, C1, "batch-1")
    await complete(client, rahul, DDA)
    return rahul


async def test_strict_entry_in_db(client, strict_story):
    assert await opens(client, strict_story, SDA, C1, "batch-1") == COMPLETE  # (class-1-maths, batch-1)
    assert await opens(client, strict_story, DDA, DDA, DDA) == COMPLETE  # (dda, dda): on its own


async def test_strict_1_in_course_while_batch_active(client, strict_story):
    assert await opens(client, strict_story, SDA, C1, "batch-1") == COMPLETE


async def test_strict_2_after_search(client, strict_story):
    assert await opens(client, strict_story, SDA) == NOT_STARTED


async def test_strict_3_rejoined_batch_2(client, strict_story):
    await context(client, "batch-2", [C1])
    await enrol(client, strict_story, C1, "batch-2", now_ms())
    assert await opens(client, strict_story, SDA, C1, "batch-2") == NOT_STARTED


async def test_strict_4_inverse_organic_then_course(client, rahul):
    await put_collection(client, C1, leafNodes=[SDA, DDA])
    await context(client, "batch-1", [C1])
    await complete(client, rahul, SDA)
    await enrol(client, rahul, C1, "batch-1", now_ms())
    assert await opens(client, rahul, SDA, C1, "batch-1") == NOT_STARTED


async def test_strict_5_organic_content_in_course(client, strict_story):
    assert await opens(client, strict_story, DDA, C1, "batch-1") == NOT_STARTED


async def test_strict_6_organic_content_after_search(client, strict_story):
    assert await opens(client, strict_story, DDA) == COMPLETE


# -- Content mode -----------------------------------------------------------------------------

@pytest.fixture
async def one_completion(client, rahul):
    """Rahul completes single-digit-addition in batch-1 of class-1-maths; class-2-maths also has
    single-digit-addition (the content and collection mode tables)."""
    await put_collection(client, C1, leafNodes=[SDA, DDA])
    await put_collection(client, C2, leafNodes=[SDA, TDA])
    await context(client, "batch-1", [C1])
    await enrol(client, rahul, C1, "batch-1", now_ms() - 10 * DAY)
    await complete(client, rahul, SDA, C1, "batch-1")
    return rahul


@pytest.mark.mode("content")
async def test_content_entry_in_db(client, one_completion):
    # Stored at (single-digit-addition, single-digit-addition): the same entry whatever is asked.
    assert await opens(client, one_completion, SDA, SDA, SDA) == COMPLETE
    assert await opens(client, one_completion, SDA, C1, "batch-1") == COMPLETE


@pytest.mark.mode("content")
async def test_content_1_in_course_while_batch_active(client, one_completion):
    assert await opens(client, one_completion, SDA, C1, "batch-1") == COMPLETE


@pytest.mark.mode("content")
async def test_content_2_after_search(client, one_completion):
    assert await opens(client, one_completion, SDA) == COMPLETE


@pytest.mark.mode("content")
async def test_content_3_rejoined_batch_2(client, app, one_completion):
    await context(client, "batch-2", [C1])
    await enrol(client, one_completion, C1, "batch-2", now_ms())
    assert await opens(client, one_completion, SDA, C1, "batch-2") == COMPLETE
    assert await wait_until(lambda: queue_empty(app, one_completion))
    s = await summary(client, one_completion, C1, "batch-2")
    assert (s["contentStatus"], s["progress"]) == ({SDA: 2}, 50)


@pytest.mark.mode("content")
async def test_content_4_joined_another_collection(client, app, one_completion):
    await context(client, "c2-batch-1", [C2])
    await enrol(client, one_completion, C2, "c2-batch-1", now_ms())
    assert await opens(client, one_completion, SDA, C2, "c2-batch-1") == COMPLETE
    await complete(client, one_completion, TDA)  # on its own: it still counts for class-2-maths
    assert await wait_until(lambda: _enrolment_status(app, one_completion, C2, "c2-batch-1", COMPLETE))


async def _enrolment_status(app, user, collection, ctx, expected) -> bool:
    e = await stored_enrolment(app, user, collection, ctx)
    return e is not None and e.status == expected


# -- Collection mode --------------------------------------------------------------------------

@pytest.mark.mode("collection")
async def test_collection_entry_in_db(client, one_completion):
    # Stored at (class-1-maths, class-1-maths): any context of the collection reads it.
    assert await opens(client, one_completion, SDA, C1, C1) == COMPLETE


@pytest.mark.mode("collection")
async def test_collection_1_in_course_while_batch_active(client, one_completion):
    assert await opens(client, one_completion, SDA, C1, "batch-1") == COMPLETE


@pytest.mark.mode("collection")
async def test_collection_2_after_search(client, one_completion):
    assert await opens(client, one_completion, SDA) == NOT_STARTED


@pytest.mark.mode("collection")
async def test_collection_3_rejoined_batch_2(client, app, one_completion):
    await context(client, "batch-2", [C1])
    await enrol(client, one_completion, C1, "batch-2", now_ms())
    assert await opens(client, one_completion, SDA, C1, "batch-2") == COMPLETE
    s = await summary(client, one_completion, C1, "batch-2")
    assert (s["contentStatus"], s["progress"]) == ({SDA: 2}, 50)
    assert await wait_until(lambda: _enrolment_progress(app, one_completion, C1, "batch-2", 50))


async def _enrolment_progress(app, user, collection, ctx, expected) -> bool:
    e = await stored_enrolment(app, user, collection, ctx)
    return e is not None and e.progress == expected


@pytest.mark.mode("collection")
async def test_collection_4_joined_another_collection(client, one_completion):
    await context(client, "c2-batch-1", [C2])
    await enrol(client, one_completion, C2, "c2-batch-1", now_ms())
    assert await opens(client, one_completion, SDA, C2, "c2-batch-1") == NOT_STARTED


@pytest.mark.mode("collection")
async def test_collection_5_program_with_the_collection(client, one_completion):
    await context(client, "program-abc", [C1])
    await enrol(client, one_completion, C1, "program-abc", now_ms())
    assert await opens(client, one_completion, SDA, C1, "program-abc") == COMPLETE


@pytest.mark.mode("collection")
async def test_collection_summaries_are_one_per_enrolment(client, one_completion):
    r = await client.get(f"/v1/summary/list/{one_completion}")
    assert r.status_code == 200, r.json()
    assert [(s["collectionId"], s["contextId"]) for s in r.json()["result"]["summary"]] == [(C1, "batch-1")]


@pytest.mark.mode("content")
async def test_context_carry_forward_needs_strict_mode(client):
    r = await client.put("/v1/context/b", json={"request": {"type": "batch", "collectionIds": [C1],
                                                            "carryForward": {"mode": "copy-content"}}})
    assert r.status_code == 400
    assert r.json()["params"]["err"] == "INVALID_REQUEST" and "request.carryForward" in r.text


# -- Copy content mode ------------------------------------------------------------------------

async def copy_story(client, rahul, mode: str, t0: int, *, also_c2: bool = False):
    """Rahul completes single-digit-addition (t0); it is in class-1-maths; he joins batch-1 and
    completes double-digit-addition in it; triple-digit-addition is not started."""
    rule = {"mode": mode, **SEED_RULE}
    await complete(client, rahul, SDA, ts=t0)
    await put_collection(client, C1, leafNodes=[SDA, DDA, TDA])
    await context(client, f"{rahul}-batch-1", [C1, C2], start=t0, end=t0 + 20 * DAY, carry=rule)
    await enrol(client, rahul, C1, f"{rahul}-batch-1", t0 + DAY)
    await complete(client, rahul, DDA, C1, f"{rahul}-batch-1", ts=t0 + 2 * DAY)
    if also_c2:
        await put_collection(client, C2, leafNodes=[SDA, DDA])
        await enrol(client, rahul, C2, f"{rahul}-batch-1", t0 + 3 * DAY)
    return f"{rahul}-batch-1"


@pytest.fixture
def t0() -> int:
    return now_ms() - 300 * DAY


@NO_WORKER
async def test_copy_content_entry_in_db(client, rahul, t0):
    b1 = await copy_story(client, rahul, "copy-content", t0)
    assert await opens(client, rahul, SDA) == COMPLETE
    copied = await status(client, rahul, SDA, C1, b1, fields=["provenance"])
    assert copied["status"] == COMPLETE and copied["lastCompletedTime"] == t0
    assert copied["provenance"]["mode"] == "copy-content"
    assert copied["provenance"]["from"] == {"collectionId": SDA, "contextId": SDA}
    earned = await status(client, rahul, DDA, C1, b1, fields=["provenance"])
    assert (earned["status"], earned["provenance"]) == (COMPLETE, None)
    assert await opens(client, rahul, TDA, C1, b1) == NOT_STARTED


@NO_WORKER
async def test_copy_content_1_in_course_while_batch_active(client, rahul, t0):
    b1 = await copy_story(client, rahul, "copy-content", t0)
    assert await opens(client, rahul, SDA, C1, b1) == COMPLETE


@NO_WORKER
async def test_copy_content_2_after_search(client, rahul, t0):
    await copy_story(client, rahul, "copy-content", t0)
    assert await opens(client, rahul, SDA) == COMPLETE


@pytest.mark.parametrize("after, expected", [(MONTH, COMPLETE), (THREE_MONTHS, NOT_STARTED)],
                         ids=["3-after-1-month", "4-after-3-months"])
@NO_WORKER
async def test_copy_content_3_4_rejoined_batch_2(client, rahul, t0, after, expected):
    b1 = await copy_story(client, rahul, "copy-content", t0)
    rejoin = t0 + after  # batch-1 ended at t0 + 20 days
    await context(client, f"{b1}-2", [C1], start=rejoin, end=rejoin + 60 * DAY,
                  carry={"mode": "copy-content", **SEED_RULE})
    await enrol(client, rahul, C1, f"{b1}-2", rejoin)
    assert await opens(client, rahul, SDA, C1, f"{b1}-2") == expected


@NO_WORKER
async def test_copy_content_5_course_content_after_search(client, rahul, t0):
    await copy_story(client, rahul, "copy-content", t0)
    assert await opens(client, rahul, DDA) == NOT_STARTED


@NO_WORKER
async def test_copy_content_6_organic_completion_while_enrolled(client, rahul, t0):
    b1 = await copy_story(client, rahul, "copy-content", t0)
    assert await opens(client, rahul, TDA, C1, b1) == NOT_STARTED  # and now in the cache
    await complete(client, rahul, TDA, ts=t0 + 5 * DAY)
    carried = await status(client, rahul, TDA, C1, b1, fields=["provenance"])  # at once: no worker runs
    assert carried["status"] == COMPLETE and carried["lastCompletedTime"] == t0 + 5 * DAY
    p = carried["provenance"]
    assert (p["mode"], p["trigger"], p["from"]) == ("copy-content", "completion", {"collectionId": TDA, "contextId": TDA})


async def test_copy_content_6_the_enrolment_completes_through_the_worker(client, app, rahul, t0):
    b1 = await copy_story(client, rahul, "copy-content", t0)
    await complete(client, rahul, TDA, ts=t0 + 5 * DAY)
    assert await wait_until(lambda: _enrolment_status(app, rahul, C1, b1, COMPLETE))
    assert await wait_until(lambda: _events(app, rahul, C1, 1))  # one completion event, not one per carry


async def _opens_as(client, user, content, collection, ctx, expected) -> bool:
    return await opens(client, user, content, collection, ctx) == expected


# -- Copy collection mode ---------------------------------------------------------------------

@NO_WORKER
async def test_copy_collection_entry_in_db(client, rahul, t0):
    b1 = await copy_story(client, rahul, "copy-collection", t0, also_c2=True)
    assert await opens(client, rahul, SDA) == COMPLETE
    assert await opens(client, rahul, SDA, C1, b1) == NOT_STARTED
    assert await opens(client, rahul, DDA, C1, b1) == COMPLETE
    assert await opens(client, rahul, TDA, C1, b1) == NOT_STARTED
    assert await opens(client, rahul, SDA, C2, b1) == NOT_STARTED
    copied = await status(client, rahul, DDA, C2, b1, fields=["provenance"])
    assert copied["status"] == COMPLETE
    assert copied["provenance"]["from"] == {"collectionId": C1, "contextId": b1}


@NO_WORKER
async def test_copy_collection_1_organic_content_in_course(client, rahul, t0):
    b1 = await copy_story(client, rahul, "copy-collection", t0, also_c2=True)
    assert await opens(client, rahul, SDA, C1, b1) == NOT_STARTED


@NO_WORKER
async def test_copy_collection_2_after_search(client, rahul, t0):
    await copy_story(client, rahul, "copy-collection", t0, also_c2=True)
    assert await opens(client, rahul, SDA) == COMPLETE


@pytest.mark.parametrize("after, expected", [(MONTH, COMPLETE), (THREE_MONTHS, NOT_STARTED)],
                         ids=["3-after-1-month", "4-after-3-months"])
@NO_WORKER
async def test_copy_collection_3_4_rejoined_batch_2(client, rahul, t0, after, expected):
    b1 = await copy_story(client, rahul, "copy-collection", t0, also_c2=True)
    rejoin = t0 + 2 * DAY + after  # after double-digit-addition was completed in batch-1
    await context(client, f"{b1}-2", [C1], start=rejoin, end=rejoin + 60 * DAY,
                  carry={"mode": "copy-collection", **SEED_RULE})
    await enrol(client, rahul, C1, f"{b1}-2", rejoin)
    assert await opens(client, rahul, DDA, C1, f"{b1}-2") == expected


@NO_WORKER
async def test_copy_collection_5_course_content_after_search(client, rahul, t0):
    await copy_story(client, rahul, "copy-collection", t0, also_c2=True)
    assert await opens(client, rahul, DDA) == NOT_STARTED


@NO_WORKER
async def test_copy_collection_6_organic_completion_while_enrolled(client, rahul, t0):
    b1 = await copy_story(client, rahul, "copy-collection", t0, also_c2=True)
    assert await opens(client, rahul, TDA, C1, b1) == NOT_STARTED  # and now in the cache
    await complete(client, rahul, TDA, ts=t0 + 5 * DAY)
    carried = await status(client, rahul, TDA, C1, b1, fields=["provenance"])  # at once: no worker runs
    assert carried["status"] == COMPLETE
    assert (carried["provenance"]["trigger"], carried["provenance"]["from"]) == \
        ("completion", {"collectionId": TDA, "contextId": TDA})
    assert await opens(client, rahul, TDA, C2, b1) == NOT_STARTED  # class-2-maths does not have it


@NO_WORKER
async def test_copy_collection_a_completion_in_one_course_reaches_the_other_at_once(client, rahul, t0):
    """Not only organic: completing dda in class-1-maths copies it into class-2-maths, enrolled
    earlier, in the same transaction (docs/modes.md)."""
    await put_collection(client, C1, leafNodes=[SDA, DDA])
    await put_collection(client, C2, leafNodes=[SDA, DDA])
    b1 = f"{rahul}-batch-1"
    await context(client, b1, [C1, C2], carry={"mode": "copy-collection"})
    await enrol(client, rahul, C1, b1, t0)
    await enrol(client, rahul, C2, b1, t0)
    await complete(client, rahul, DDA, C1, b1, ts=t0 + DAY)
    p = (await status(client, rahul, DDA, C2, b1, fields=["provenance"]))["provenance"]
    assert p["from"] == {"collectionId": C1, "contextId": b1} and p["trigger"] == "completion"
    assert await opens(client, rahul, SDA, C2, b1) == NOT_STARTED


@NO_WORKER
async def test_copy_collection_7_in_the_other_course(client, rahul, t0):
    b1 = await copy_story(client, rahul, "copy-collection", t0, also_c2=True)
    assert await opens(client, rahul, DDA, C2, b1) == COMPLETE


# -- Move mode --------------------------------------------------------------------------------

@pytest.fixture
async def move_story(client, rahul):
    """Rahul completes single-digit-addition in batch-1 (still active), then enrols in Program 1,
    which has class-1-maths and moves progress of an on-going batch into the program."""
    t = now_ms() - 20 * DAY
    await put_collection(client, C1, leafNodes=[SDA, DDA])
    await context(client, f"{rahul}-batch-1", [C1], start=t, end=t + 90 * DAY)
    await context(client, f"{rahul}-program-batch-1", [C1], carry={"mode": "move"})
    await enrol(client, rahul, C1, f"{rahul}-batch-1", t)
    await complete(client, rahul, SDA, C1, f"{rahul}-batch-1", ts=t + DAY)
    moved = await enrol(client, rahul, C1, f"{rahul}-program-batch-1", t + 2 * DAY)
    assert moved["movedFrom"] == [{"collectionId": C1, "contextId": f"{rahul}-batch-1"}]
    assert moved["carried"] == [SDA]
    return rahul


async def test_move_entry_in_db(client, app, move_story):
    rahul = move_story
    moved = await status(client, rahul, SDA, C1, f"{rahul}-program-batch-1", fields=["provenance"])
    assert moved["status"] == COMPLETE
    assert moved["provenance"]["mode"] == "move"
    assert moved["provenance"]["from"] == {"collectionId": C1, "contextId": f"{rahul}-batch-1"}
    gone = await status(client, rahul, SDA, C1, f"{rahul}-batch-1")
    assert gone["status"] == NOT_STARTED and gone["lastAccessTime"] is None  # the row is deleted
    old = await stored_enrolment(app, rahul, C1, f"{rahul}-batch-1")
    assert not old.active and old.moved_to["contextId"] == f"{rahul}-program-batch-1"


async def test_move_1_old_batch(client, move_story):
    assert await opens(client, move_story, SDA, C1, f"{move_story}-batch-1") == NOT_STARTED


async def test_move_2_via_program(client, move_story):
    assert await opens(client, move_story, SDA, C1, f"{move_story}-program-batch-1") == COMPLETE


# -- Beyond the tables: scores, completion, explainability, races -----------------------------

def _assess(qid, ets, score, attempt):
    return {"eid": "ASSESS", "ets": ets, "context": {"cdata": [{"type": "AttemptId", "id": attempt}]},
            "edata": {"score": score, "duration": 3, "resvalues": [], "item": {"id": qid, "maxscore": 1}}}


async def _submit(client, user, content, collection, ctx, ts, score, attempt):
    st, body = await post(client, "/v1/assessment/submit", userId=user, contentId=content, collectionId=collection,
                          contextId=ctx, assessments=[_assess("q1", ts, score, attempt), _assess("q2", ts + 1, 1, attempt)])
    assert st == 200, body


async def test_scores_come_with_carried_status_and_say_so(client, rahul, t0):
    """The best score of a carried content comes along, marked carried, until a better attempt
    is made in the target."""
    await put_collection(client, "course-q", leafNodes=["quiz", "video"])
    await _submit(client, rahul, "quiz", "quiz", None, t0, 0.5, "a1")
    await complete(client, rahul, "quiz", ts=t0 + 1)
    await context(client, f"{rahul}-b", ["course-q"], carry={"mode": "copy-content"})
    result = await enrol(client, rahul, "course-q", f"{rahul}-b", t0 + DAY)
    assert result["carried"] == ["quiz"]
    s = await summary(client, rahul, "course-q", f"{rahul}-b")  # read-after-write: no wait for the worker
    assert s["assessmentStatus"] == {"quiz": {"score": 1.5, "max_score": 2.0, "carried": True}}
    assert s["contentOrigin"] == {"quiz": "carried"}
    assert s["carriedFrom"]["quiz"]["from"] == {"collectionId": "quiz", "contextId": "quiz"}
    assert s["carriedFrom"]["quiz"]["attemptId"] == "a1"
    await _submit(client, rahul, "quiz", "course-q", f"{rahul}-b", t0 + 2 * DAY, 1, "a2")
    s = await summary(client, rahul, "course-q", f"{rahul}-b")
    assert s["assessmentStatus"] == {"quiz": {"score": 2.0, "max_score": 2.0, "carried": False}}
    st, body = await post(client, "/v1/assessment/read", userId=rahul, contentId=["quiz"], collectionId="course-q",
                          contextId=f"{rahul}-b")
    assert st == 200, body
    assert body["result"]["contents"][0]["score"] == 2.0


async def test_carried_completion_completes_the_enrolment_once(client, app, rahul, t0):
    await put_collection(client, "course-mode-e", leafNodes=["a", "b"])
    await complete(client, rahul, "a", ts=t0)
    await complete(client, rahul, "b", ts=t0 + 1)
    await context(client, f"{rahul}-b", ["course-mode-e"], carry={"mode": "copy-content"})
    enrolled = t0 + 10 * DAY
    await enrol(client, rahul, "course-mode-e", f"{rahul}-b", enrolled)
    s = await summary(client, rahul, "course-mode-e", f"{rahul}-b")
    assert (s["status"], s["progress"], s["completedOn"]) == (2, 100, enrolled)  # not before it began
    assert await wait_until(lambda: _enrolment_status(app, rahul, "course-mode-e", f"{rahul}-b", COMPLETE))
    await enrol(client, rahul, "course-mode-e", f"{rahul}-b", enrolled)  # idempotent: nothing more happens
    await complete(client, rahul, "a", ts=t0 + 2)  # a later view of a source changes nothing either
    assert await wait_until(lambda: queue_empty(app, rahul))
    assert await wait_until(lambda: _events(app, rahul, "course-mode-e", 1))
    assert (await stored_enrolment(app, rahul, "course-mode-e", f"{rahul}-b")).completed_on == enrolled


async def _events(app, user, collection, n) -> bool:
    found = [e for e in events_for(app, user) if collection in str(e) and e.get("eid") != "BE_JOB_REQUEST"]
    return len(found) == n


@pytest.mark.settings(carry_forward="copy-content", carry_forward_window_days=90)
async def test_instance_default_applies_to_contexts_without_their_own_rule(client, rahul, t0):
    await put_collection(client, "course-d", leafNodes=["a", "b"])
    await complete(client, rahul, "a", ts=t0)
    await context(client, f"{rahul}-plain", ["course-d"])
    await context(client, f"{rahul}-strict", ["course-d"], carry={"mode": "none"})
    await enrol(client, rahul, "course-d", f"{rahul}-plain", t0 + DAY)
    await enrol(client, rahul, "course-d", f"{rahul}-strict", t0 + DAY)
    assert await opens(client, rahul, "a", "course-d", f"{rahul}-plain") == COMPLETE
    assert await opens(client, rahul, "a", "course-d", f"{rahul}-strict") == NOT_STARTED
    late = f"{rahul}-late"  # the instance's 90-day window
    await context(client, late, ["course-d"])
    await enrol(client, rahul, "course-d", late, t0 + 91 * DAY)
    assert await opens(client, rahul, "a", "course-d", late) == NOT_STARTED


@NO_WORKER
async def test_completions_racing_enrolments_are_carried_once_and_at_once(client, app, rahul, t0):
    """Completions and enrolments of one learner, concurrently, round after round, with no worker:
    once all have answered, every completion is in every enrolment, exactly once, with provenance
    (an enrolment's pull and a completion's are serialised per learner: services/carry.py)."""
    leaves = [f"c{i}" for i in range(6)]
    await put_collection(client, "course-mode-race", leafNodes=leaves)
    for n in range(10):
        user = f"{rahul}-{n}"
        ctxs = [f"{user}-b{i}" for i in range(2)]
        for ctx in ctxs:
            await context(client, ctx, ["course-mode-race"], carry={"mode": "copy-content"})
        enrolled = await asyncio.gather(*(enrol(client, user, "course-mode-race", ctx, t0) for ctx in ctxs),
                                        *(complete(client, user, c, ts=t0 + DAY) for c in leaves))
        for ctx, result in zip(ctxs, enrolled):
            read = {c: await status(client, user, c, "course-mode-race", ctx, fields=["provenance"]) for c in leaves}
            assert {c: r["status"] for c, r in read.items()} == dict.fromkeys(leaves, COMPLETE), (n, ctx)
            by_trigger = {c: r["provenance"]["trigger"] for c, r in read.items()}
            # What the enrolment carried it lists; the rest the completions carried: none twice.
            assert sorted(result["carried"]) == sorted(c for c, t in by_trigger.items() if t == "enrol"), (n, ctx)
            assert set(by_trigger.values()) <= {"enrol", "completion"}
            assert all(r["provenance"]["from"] == {"collectionId": c, "contextId": c} for c, r in read.items())
            rows = await _stored_rows(app, user, "course-mode-race", ctx)
            assert sorted(r.content_id for r in rows) == leaves  # one row per content
            assert all(r.carried_from is not None and r.view_count == 0 for r in rows)


async def _stored_rows(app, user, collection, ctx):
    import sqlalchemy as sa

    from viewer_service.adapters.db.tables import user_content_consumption as ucc

    async with app.state.app.views.reader.connect() as conn:
        return (await conn.execute(sa.select(ucc).where(ucc.c.user_id == user, ucc.c.collection_id == collection,
                                                        ucc.c.context_id == ctx))).all()


async def test_completions_racing_an_enrolment_complete_it(client, app, rahul, t0):
    """With the worker: the enrolment completes, once."""
    leaves = [f"c{i}" for i in range(12)]
    await put_collection(client, "course-mode-r", leafNodes=leaves)
    await context(client, f"{rahul}-b", ["course-mode-r"], carry={"mode": "copy-content"})
    ts = now_ms() - 60_000
    await asyncio.gather(enrol(client, rahul, "course-mode-r", f"{rahul}-b", ts - 1),
                         *(complete(client, rahul, c, ts=ts) for c in leaves))
    s = await summary(client, rahul, "course-mode-r", f"{rahul}-b")
    assert s["contentOrigin"] == {c: "carried" for c in leaves}
    assert await wait_until(lambda: _enrolment_status(app, rahul, "course-mode-r", f"{rahul}-b", COMPLETE))
    assert await wait_until(lambda: _events(app, rahul, "course-mode-r", 1))


async def test_move_keeps_a_completed_enrolment_and_copies_from_it(client, app, rahul):
    t = now_ms() - 20 * DAY
    await put_collection(client, "course-mode-m", leafNodes=["a"])
    await context(client, f"{rahul}-b1", ["course-mode-m"])
    await context(client, f"{rahul}-p1", ["course-mode-m"], carry={"mode": "move"})
    await enrol(client, rahul, "course-mode-m", f"{rahul}-b1", t)
    await complete(client, rahul, "a", "course-mode-m", f"{rahul}-b1", ts=t + 1)
    assert await wait_until(lambda: _enrolment_status(app, rahul, "course-mode-m", f"{rahul}-b1", COMPLETE))
    result = await enrol(client, rahul, "course-mode-m", f"{rahul}-p1", t + DAY)
    assert result["movedFrom"] == [] and result["carried"] == ["a"]
    assert await opens(client, rahul, "a", "course-mode-m", f"{rahul}-b1") == COMPLETE  # still there
    p = (await status(client, rahul, "a", "course-mode-m", f"{rahul}-p1", fields=["provenance"]))["provenance"]
    assert p["mode"] == "move" and p["sourceKept"] is True
    assert (await stored_enrolment(app, rahul, "course-mode-m", f"{rahul}-b1")).active


async def test_move_leaves_an_ended_batch_alone(client, app, rahul):
    t = now_ms() - 100 * DAY
    await put_collection(client, "course-mode-x", leafNodes=["a", "b"])
    await context(client, f"{rahul}-b1", ["course-mode-x"], start=t, end=t + 30 * DAY)
    await context(client, f"{rahul}-p1", ["course-mode-x"], carry={"mode": "move"})
    await enrol(client, rahul, "course-mode-x", f"{rahul}-b1", t)
    await complete(client, rahul, "a", "course-mode-x", f"{rahul}-b1", ts=t + 1)
    result = await enrol(client, rahul, "course-mode-x", f"{rahul}-p1", t + 60 * DAY)
    assert result["movedFrom"] == [] and result["carried"] == []
    assert await opens(client, rahul, "a", "course-mode-x", f"{rahul}-b1") == COMPLETE
    assert await opens(client, rahul, "a", "course-mode-x", f"{rahul}-p1") == NOT_STARTED


async def test_moved_summary_explains_where_progress_went(client, move_story):
    rahul = move_story
    old = await summary(client, rahul, C1, f"{rahul}-batch-1")
    assert old["active"] is False and old["movedTo"]["contextId"] == f"{rahul}-program-batch-1"
    new = await summary(client, rahul, C1, f"{rahul}-program-batch-1")
    assert new["contentOrigin"] == {SDA: "carried"} and new["carriedFrom"][SDA]["mode"] == "move"
    assert new["progress"] == 50


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_bad_mode_input_gets_the_field(client, rahul):
    st, body = await post(client, "/v1/view/read", userId=rahul, contentId=["a"], fields=["why"])
    assert st == 400 and body["result"]["field"] == "request.fields.0", body
    r = await client.put("/v1/context/x", json={"request": {"type": "batch", "collectionIds": ["c"],
                                                            "carryForward": {"mode": "copy-content", "windowDays": "soon"}}})
    assert r.status_code == 400 and r.json()["result"]["field"] == "request.carryForward.windowDays", r.json()


@pytest.mark.mode("collection")
async def test_a_better_score_asks_every_enrolment_that_counts_it_to_reissue(client, app, rahul):
    """In collection mode the score is stored once, at (collection, collection); each enrolment of
    the collection gets its certificate re-evaluated."""
    await put_collection(client, "course-cs", leafNodes=["quiz"])
    for b in ("b1", "b2"):
        await context(client, f"{rahul}-{b}", ["course-cs"])
        await enrol(client, rahul, "course-cs", f"{rahul}-{b}", now_ms() - DAY)
    await _submit(client, rahul, "quiz", "course-cs", f"{rahul}-b1", now_ms() - 60_000, 0.5, "a1")
    assert await wait_until(lambda: _reissued(app, rahul, {f"{rahul}-b1", f"{rahul}-b2"}))


async def _reissued(app, user, contexts) -> bool:
    found = {e["edata"]["batchId"] for e in events_for(app, user) if "attemptId" in e.get("edata", {})}
    return found == contexts


async def test_rejoining_a_moved_from_batch_starts_it_afresh(client, app, move_story):
    rahul = move_story
    again = await enrol(client, rahul, C1, f"{rahul}-batch-1", now_ms())
    assert again["created"] and again["active"] and again["movedTo"] is None and again["progress"] == 0
    assert await opens(client, rahul, SDA, C1, f"{rahul}-batch-1") == NOT_STARTED


@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize("shared_cache", [True, False], ids=["worker-with-redis", "worker-without-redis"])
@pytest.mark.settings(worker_in_serve=False)
async def test_a_separate_worker_process_carries_and_the_serving_cache_shows_it(
        client, app, rahul, pg_url, redis_server, settings, shared_cache, t0):
    """Continuous copy by a `viewer-service worker` process, the safety net for what a write could
    not carry: here a content the learner completed while enrolled, added to the course later. The
    serving process's cache must show the carried row, whether the worker updates the shared cache
    itself or, without Redis, leaves repair marks for the serving process."""
    import subprocess

    from test_cli import BIN, _env

    await put_collection(client, "course-w", leafNodes=["b"])
    await context(client, f"{rahul}-b", ["course-w"], carry={"mode": "copy-content"})
    await enrol(client, rahul, "course-w", f"{rahul}-b", t0)
    await complete(client, rahul, "a", ts=t0 + DAY)  # organic, while enrolled: not in the course yet
    await put_collection(client, "course-w", leafNodes=["a", "b"])
    assert await opens(client, rahul, "a", "course-w", f"{rahul}-b") == NOT_STARTED  # now cached
    env = _env(VIEWER_DATABASE_URL=pg_url, VIEWER_EVENT_SINK="none", VIEWER_WORKER_POLL_SECONDS="0.05")
    if shared_cache:
        env.update(VIEWER_REDIS_URL=redis_server.url, VIEWER_REDIS_PREFIX=settings.redis_prefix)
    worker = subprocess.Popen([BIN, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert await wait_until(lambda: _opens_as(client, rahul, "a", "course-w", f"{rahul}-b", COMPLETE),
                                timeout=60)
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()[-2000:]
    p = (await status(client, rahul, "a", "course-w", f"{rahul}-b", fields=["provenance"]))["provenance"]
    assert (p["mode"], p["trigger"]) == ("copy-content", "completion")


@NO_WORKER  # only the requests' own statements are counted
async def test_only_a_completing_write_looks_for_carry_targets(client, app, rahul):
    """Plain updates cost nothing extra: the learner's enrolments are read only by a write that
    completes a content, and once per write batch."""
    from sqlalchemy import event

    seen: list[str] = []
    engine = app.state.app.views.engine.sync_engine

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    await post(client, "/v1/view/start", userId=rahul, contentId="a")
    event.listen(engine, "before_cursor_execute", record)
    try:
        st, body = await post(client, "/v1/view/update", userId=rahul, contentId="a", progress=50)
        assert st == 200, body
        updates = list(seen)
        st, body = await post(client, "/v1/view/end", userId=rahul, contentId="a")
        assert st == 200, body
        ends = seen[len(updates):]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert updates and not any("enrolment" in q for q in updates)
    assert sum("FROM enrolment" in q for q in ends) == 1


@NO_WORKER
async def test_legacy_content_state_updates_carry_at_once(client, rahul):
    """lms-service's content state update (docs/sunbird.md) completes through the same write path:
    a status 2, and an assessment (which implies completion), are carried in their transaction."""
    from test_api_assessments import assess

    now = now_ms()
    await put_collection(client, C1, leafNodes=[SDA, DDA])
    await put_collection(client, C2, leafNodes=[SDA, DDA])
    await context(client, f"{rahul}-b1", [C1], start=now - DAY)
    await context(client, f"{rahul}-b2", [C2], carry={"mode": "copy-collection"})
    await enrol(client, rahul, C2, f"{rahul}-b2", now - DAY)
    r = await client.patch("/v1/content/state/update", json={"request": {"userId": rahul, "contents": [
        {"contentId": SDA, "courseId": C1, "batchId": f"{rahul}-b1", "status": 2}]}})
    assert r.status_code == 200, r.json()
    p = (await status(client, rahul, SDA, C2, f"{rahul}-b2", fields=["provenance"]))["provenance"]
    assert (p["trigger"], p["from"]) == ("completion", {"collectionId": C1, "contextId": f"{rahul}-b1"})
    ts = now - 60_000
    r = await client.patch("/v1/content/state/update", json={"request": {"userId": rahul, "assessments": [{
        "assessmentTs": str(ts), "courseId": C1, "contentId": DDA, "batchId": f"{rahul}-b1", "userId": rahul,
        "attemptId": "att-1", "events": [assess("q1", ts - 2000, 1), assess("q2", ts - 1000, 0)]}]}})
    assert r.status_code == 200, r.json()
    carried = await status(client, rahul, DDA, C2, f"{rahul}-b2", fields=["provenance"])
    assert carried["status"] == COMPLETE and carried["provenance"]["trigger"] == "completion"
