"""Completion events (domain/events.py): their Sunbird shapes, deterministic ids, generic events."""

import uuid

import orjson
import pytest

from viewer_service.domain.events import completion_events, event


def test_completion_events_have_sunbird_shapes():
    cert, audit = completion_events("u1", "do_course", "batch-7", 1_700_000_000_000, 1_700_000_000_500)
    assert (cert.kind, audit.kind) == ("cert-issue", "enrol-complete")
    assert {e.collection_id for e in (cert, audit)} == {"do_course"}
    assert {e.context_id for e in (cert, audit)} == {"batch-7"}
    ets = 1_700_000_000_500

    c = cert.payload
    assert list(c) == ["eid", "ets", "mid", "actor", "context", "object", "edata"]
    assert c["eid"] == "BE_JOB_REQUEST"
    assert c["ets"] == ets
    prefix, mid_ets, mid_uuid = c["mid"].split(".", 2)
    assert (prefix, mid_ets) == ("LP", str(ets))
    uuid.UUID(mid_uuid)
    assert c["actor"] == {"id": "Course Certificate Generator", "type": "System"}
    assert c["context"] == {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}}
    assert c["object"] == {"id": "batch-7_do_course", "type": "CourseCertificateGeneration"}
    assert c["edata"] == {"userIds": ["u1"], "action": "issue-certificate", "iteration": 1, "trigger": "auto-issue",
                          "batchId": "batch-7", "reIssue": False, "courseId": "do_course"}
    assert list(c["edata"]) == ["userIds", "action", "iteration", "trigger", "batchId", "reIssue", "courseId"]

    a = audit.payload
    assert list(a) == ["actor", "eid", "edata", "ver", "syncts", "ets", "context", "mid", "object", "tags"]
    assert a["actor"] == {"id": "u1", "type": "User"}
    assert a["eid"] == "AUDIT"
    assert a["edata"] == {"props": ["status", "completedon"], "type": "enrol-complete"}
    assert a["ver"] == "3.0"
    assert a["syncts"] == a["ets"] == ets
    ctx = a["context"]
    assert list(ctx) == ["channel", "env", "sid", "did", "pdata", "cdata"]
    assert (ctx["channel"], ctx["env"]) == ("in.sunbird", "Course")
    uuid.UUID(ctx["sid"])
    uuid.UUID(ctx["did"])
    assert ctx["pdata"] == {"ver": "3.0", "id": "org.sunbird.learning.platform", "pid": "course-progress-updater"}
    assert ctx["cdata"] == [{"type": "CourseBatch", "id": "batch-7"}, {"type": "Course", "id": "do_course"}]
    assert a["mid"].startswith("LP.AUDIT.")
    uuid.UUID(a["mid"][len("LP.AUDIT."):])
    assert a["object"] == {"id": "u1", "type": "User", "rollup": {"l1": "do_course"}}
    assert a["tags"] == []


def test_completion_events_are_deterministic_and_distinct_per_fact():
    args = ("u1", "do_course", "batch-7", 1_700_000_000_000, 1_700_000_000_500)
    first, again = completion_events(*args), completion_events(*args)
    assert first == again
    assert [orjson.dumps(e.payload) for e in first] == [orjson.dumps(e.payload) for e in again]
    mids = {e.payload["mid"] for e in first}
    assert len(mids) == 2
    # Any other fact (learner, collection, context, completion time) gets other ids.
    for other in [("u2", *args[1:]), ("u1", "do_other", *args[2:]), ("u1", "do_course", "batch-8", *args[3:]),
                  ("u1", "do_course", "batch-7", 1_700_000_000_001, args[4])]:
        es = completion_events(*other)
        assert not mids & {e.payload["mid"] for e in es}
        if other[0] == "u1":  # the outbox key is (user, event_id)
            assert not {e.event_id for e in first} & {e.event_id for e in es}
    # Ids with separators in them do not collide.
    a = completion_events("u", "a:1", "b", 5, 9)
    b = completion_events("u", "a", "1:b", 5, 9)
    assert {e.event_id for e in a}.isdisjoint(e.event_id for e in b)
    assert {e.payload["mid"] for e in a}.isdisjoint(e.payload["mid"] for e in b)
    # Longest ids still fit the outbox key.
    long = completion_events("u" * 256, "c" * 256, "x" * 256, 2**62, 2**62)
    assert max(len(e.event_id) for e in long) <= 1024


def test_a_generic_event_needs_a_mid():
    assert event("cert-reissue", "k", {"mid": "m1"}, "c", "x").kind == "cert-reissue"
    with pytest.raises(ValueError):
        event("cert-reissue", "k", {"eid": "X"})
