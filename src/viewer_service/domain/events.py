"""Events for other systems, in Sunbird's shapes (pure: no I/O).

Every id in an event is derived from the fact it reports (uuid5), never random: building the
events of one fact again gives the same ids, so the sink can drop a re-delivery by its `mid`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

CERT_ISSUE = "cert-issue"
CERT_REISSUE = "cert-reissue"
ENROL_COMPLETE = "enrol-complete"

# Fixed forever: changing it changes every mid, and consumers would see re-deliveries as new.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:viewer-service:events")


@dataclass(frozen=True)
class OutboxEvent:
    event_id: str  # unique per fact for one learner (the outbox key is user_id + event_id)
    kind: str
    collection_id: str | None  # the scope it is about, so an erase can drop it
    context_id: str | None
    payload: dict


def event(kind: str, event_id: str, payload: dict, collection_id: str | None = None,
          context_id: str | None = None) -> OutboxEvent:
    if not isinstance(payload.get("mid"), str) or not payload["mid"]:
        raise ValueError("an event payload needs a string mid: the sink deduplicates by it")
    if len(event_id) > 1024:
        raise ValueError("event_id longer than 1024 characters")
    return OutboxEvent(event_id, kind, collection_id, context_id, payload)


def fact_uuid(*parts: object) -> str:
    # Length-prefixed so that ids containing the separator cannot collide.
    name = "".join(f"{len(s)}:{s};" for s in map(str, parts))
    return str(uuid.uuid5(NAMESPACE, name))


def completion_event_id(kind: str, collection_id: str, context_id: str, completed_on: int) -> str:
    return f"{kind}:{len(collection_id)}:{collection_id}:{context_id}:{completed_on}"


def _cert_request(user_id: str, collection_id: str, context_id: str, mid_uuid: str, now_ms: int) -> dict:
    return {
        "eid": "BE_JOB_REQUEST",
        "ets": now_ms,
        "mid": f"LP.{now_ms}.{mid_uuid}",
        "actor": {"id": "Course Certificate Generator", "type": "System"},
        "context": {"pdata": {"ver": "1.0", "id": "org.sunbird.platform"}},
        "object": {"id": f"{context_id}_{collection_id}", "type": "CourseCertificateGeneration"},
        "edata": {
            "userIds": [user_id],
            "action": "issue-certificate",
            "iteration": 1,
            "trigger": "auto-issue",
            "batchId": context_id,
            "reIssue": False,
            "courseId": collection_id,
        },
    }


def cert_reissue_event(user_id: str, collection_id: str, context_id: str, content_id: str, attempt_id: str,
                       version: int, now_ms: int) -> OutboxEvent:
    """A certificate re-evaluation request after the best score of `content_id` changed: Sunbird's
    assessment-aggregator shape (cert-issue plus edata.attemptId). One fact per row `version`."""
    fid = fact_uuid(user_id, collection_id, context_id, content_id, CERT_REISSUE, version)
    payload = _cert_request(user_id, collection_id, context_id, fid, now_ms)
    payload["edata"]["attemptId"] = attempt_id
    return event(CERT_REISSUE, f"{CERT_REISSUE}:{fid}", payload, collection_id, context_id)


def completion_events(user_id: str, collection_id: str, context_id: str, completed_on: int,
                      now_ms: int) -> list[OutboxEvent]:
    """The events of an enrolment's first completion: [cert-issue, enrol-complete].
    Sunbird's batchId is our context id, its courseId our collection id; ets is `now_ms`."""
    ids = {k: fact_uuid(user_id, collection_id, context_id, k, completed_on) for k in (CERT_ISSUE, ENROL_COMPLETE)}
    audit_uuid = lambda role: fact_uuid(user_id, collection_id, context_id, ENROL_COMPLETE, completed_on, role)  # noqa: E731
    cert = _cert_request(user_id, collection_id, context_id, ids[CERT_ISSUE], now_ms)
    audit = {
        "actor": {"id": user_id, "type": "User"},
        "eid": "AUDIT",
        "edata": {"props": ["status", "completedon"], "type": "enrol-complete"},
        "ver": "3.0",
        "syncts": now_ms,
        "ets": now_ms,
        "context": {
            "channel": "in.sunbird",
            "env": "Course",
            "sid": audit_uuid("sid"),
            "did": audit_uuid("did"),
            "pdata": {"ver": "3.0", "id": "org.sunbird.learning.platform", "pid": "course-progress-updater"},
            "cdata": [{"type": "CourseBatch", "id": context_id}, {"type": "Course", "id": collection_id}],
        },
        "mid": f"LP.AUDIT.{ids[ENROL_COMPLETE]}",
        "object": {"id": user_id, "type": "User", "rollup": {"l1": collection_id}},
        "tags": [],
    }
    return [
        event(kind, completion_event_id(kind, collection_id, context_id, completed_on), payload,
              collection_id, context_id)
        for kind, payload in ((CERT_ISSUE, cert), (ENROL_COMPLETE, audit))
    ]
