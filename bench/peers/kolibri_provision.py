"""Runs inside Kolibri's own venv and Django context (never imported by viewer-service):

    KOLIBRI_HOME=... PEERS_LEARNERS=200 PEERS_CONTENTS=5 PEERS_OUT=/tmp/x.json \
        kolibri manage shell -c "exec(open('bench/peers/kolibri_provision.py').read())"

Creates, on a device already provisioned with `kolibri manage provisiondevice`:
- learners `bench_u0` .. `bench_u<N-1>` (password `benchpass`) in the default facility;
- one channel whose root topic has `PEERS_CONTENTS` video leaves, all `available`, so that
  `GET /api/content/contentnodeprogress/?parent=<topic>` lists them.
Then counts the SQL statements Kolibri runs for one progress update and one progress read
(Django test client, every database alias), and writes ids and counts to PEERS_OUT as JSON.
"""

import json
import os
import uuid

from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from kolibri.core.auth.models import Facility, FacilityUser
from kolibri.core.content.models import ChannelMetadata, ContentNode

learners = int(os.environ.get("PEERS_LEARNERS", "200"))
contents = int(os.environ.get("PEERS_CONTENTS", "5"))
password = "benchpass"

facility = Facility.get_default_facility()
existing = set(FacilityUser.objects.filter(facility=facility).values_list("username", flat=True))
for i in range(learners):
    name = f"bench_u{i}"
    if name not in existing:
        FacilityUser.objects.create_user(name, password=password, facility=facility)

channel_id = uuid.uuid4().hex
root = ContentNode.objects.create(
    id=uuid.uuid4().hex, parent=None, title="bench_course", content_id=uuid.uuid4().hex,
    channel_id=channel_id, kind="topic", available=True)
leaves = []
for j in range(1, contents + 1):
    leaves.append(ContentNode.objects.create(
        id=uuid.uuid4().hex, parent=root, title=f"do_bench_{j}", content_id=uuid.uuid4().hex,
        channel_id=channel_id, kind="video", available=True, sort_order=j))
ChannelMetadata.objects.create(id=channel_id, name="bench", root=root, min_schema_version="1")

# Every database Kolibri talks to (default, sessions, notifications, ...), so nothing is missed.
aliases = list(connections)


def counted(fn):
    ctxs = [CaptureQueriesContext(connections[a]) for a in aliases]
    for c in ctxs:
        c.__enter__()
    try:
        status = fn()
    finally:
        for c in ctxs:
            c.__exit__(None, None, None)
    by_alias = {a: len(c.captured_queries) for a, c in zip(aliases, ctxs) if c.captured_queries}
    sql = [q["sql"][:160] for c in ctxs for q in c.captured_queries]
    return status, by_alias, sql


client = Client()
r = client.post("/api/auth/session/", {"username": "bench_u0", "password": password,
                                       "facility": facility.id}, content_type="application/json")
assert r.status_code == 200, (r.status_code, r.content[:300])
node = leaves[0]
start = {"node_id": node.id, "content_id": node.content_id, "channel_id": channel_id, "kind": "video"}
r = client.post("/api/logger/trackprogress/", start, content_type="application/json")
assert r.status_code == 200, (r.status_code, r.content[:300])
session_id = r.json()["session_id"]
client.put(f"/api/logger/trackprogress/{session_id}/", {"progress": 0.1, "time_spent_delta": 5},
           content_type="application/json")  # first update: warms per-process caches
write = counted(lambda: client.put(
    f"/api/logger/trackprogress/{session_id}/",
    {"progress": 0.42, "time_spent_delta": 5, "extra_fields": {"position": 123}},
    content_type="application/json").status_code)
client.get(f"/api/content/contentnodeprogress/?parent={root.id}")
read = counted(lambda: client.get(f"/api/content/contentnodeprogress/?parent={root.id}").status_code)

out = {
    "facility_id": facility.id, "password": password, "channel_id": channel_id, "topic_id": root.id,
    "nodes": [{"node_id": n.id, "content_id": n.content_id} for n in leaves],
    "sql_per_write": {"status": write[0], "by_database": write[1], "statements": write[2]},
    "sql_per_read": {"status": read[0], "by_database": read[1], "statements": read[2]},
}
with open(os.environ["PEERS_OUT"], "w") as f:
    json.dump(out, f, indent=1)
print(f"provisioned {learners} learners, {contents} contents; SQL per write {sum(write[1].values())}, "
      f"per read {sum(read[1].values())}")
