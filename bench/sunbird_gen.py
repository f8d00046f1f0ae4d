"""Realistic `cqlsh COPY ... TO ... WITH HEADER = TRUE` files of Sunbird's tables.

    python bench/sunbird_gen.py DIR --rows 1000000 [--seed 1]

--rows is the number of user_content_consumption rows; the other tables follow from it (one
enrolment per learner and course, an attempt for every fourth content, one activity row per
enrolment). Values use every literal form cqlsh writes: timestamps in cqlsh's and Sunbird's
text formats, maps, lists of maps and of user-defined types, booleans, empty for null, JSON
with quotes and commas inside a text column. Streams: constant memory whatever --rows."""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from viewer_service.domain.cqlsh import Dialect  # noqa: E402

CONTENTS_PER_COURSE = 10
COURSES = 50
BASE_MS = 1_600_000_000_000

UCC_HEADER = ["userid", "courseid", "batchid", "contentid", "completedcount", "datetime", "lastaccesstime",
              "lastcompletedtime", "lastupdatedtime", "progress", "progressdetails", "status", "viewcount",
              "last_access_time", "last_completed_time", "last_updated_time"]
ENROL_HEADER = ["userid", "courseid", "batchid", "active", "addedby", "certificates", "completedon",
                "completionpercentage", "contentstatus", "datetime", "enrolled_date", "enrolleddate",
                "issued_certificates", "lastreadcontentid", "lastreadcontentstatus", "progress", "status"]
ASSESS_HEADER = ["course_id", "batch_id", "user_id", "content_id", "attempt_id", "created_on", "grand_total",
                 "last_attempted_on", "question", "total_max_score", "total_score", "updated_on"]
AGG_HEADER = ["activity_type", "activity_id", "user_id", "context_id", "agg", "agg_last_updated", "aggregates"]


def cql_ts(ms: int) -> str:
    """cqlsh's timestamp format."""
    s, milli = divmod(ms, 1000)
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s)) + f".{milli:03d}000+0000"


def text_ts(ms: int) -> str:
    """Sunbird's text times (lastaccesstime ...): yyyy-MM-dd HH:mm:ss:SSSZ."""
    s, milli = divmod(ms, 1000)
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s)) + f":{milli:03d}+0000"


def q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def generate(out: Path, rows: int, seed: int = 1, only_consumption: bool = False) -> dict[str, int]:
    rnd = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(("user_content_consumption", "user_enrolments", "assessment_aggregator",
                            "user_activity_agg"), 0)
    files = {t: open(out / f"{t}.csv" if t == "user_content_consumption" or not only_consumption else os.devnull,
                     "w", newline="", encoding="utf-8") for t in counts}
    w = {t: csv.writer(f, Dialect) for t, f in files.items()}
    w["user_content_consumption"].writerow(UCC_HEADER)
    w["user_enrolments"].writerow(ENROL_HEADER)
    w["assessment_aggregator"].writerow(ASSESS_HEADER)
    w["user_activity_agg"].writerow(AGG_HEADER)
    done = 0
    user = 0
    while done < rows:
        user += 1
        uid = f"user-{user:08d}-{rnd.getrandbits(32):08x}"
        for ci in rnd.sample(range(COURSES), 2):
            course, batch = f"do_course_{ci}", f"batch_{ci}_{ci % 3}"
            statuses = {}
            t0 = BASE_MS + rnd.randrange(0, 3 * 365 * 86_400_000)
            n = min(rnd.randint(1, CONTENTS_PER_COURSE), rows - done)
            for k in range(n):
                cid = f"do_{ci}_{k}"
                status = 2 if rnd.random() < 0.6 else 1
                ts = t0 + k * 600_000
                statuses[cid] = status
                details = '{"current": ["%d"], "max": ["%d"], "note": "p, \\"q\\""}' % (k, k + 3) \
                    if rnd.random() < 0.3 else ""
                old = rnd.random() < 0.5  # rows written before or after Sunbird's column rename
                w["user_content_consumption"].writerow([
                    uid, course, batch, cid, 1 if status == 2 else 0, cql_ts(ts), text_ts(ts) if old else "",
                    text_ts(ts + 1000) if old and status == 2 else "", text_ts(ts + 1000) if old else "",
                    100 if status == 2 else rnd.randint(0, 99), details, status, rnd.randint(1, 5),
                    "" if old else cql_ts(ts), "" if old or status != 2 else cql_ts(ts + 1000),
                    "" if old else cql_ts(ts + 1000)])
                done += 1
                counts["user_content_consumption"] += 1
                if k % 4 == 0 and not only_consumption:
                    score = rnd.randint(0, 2)
                    question = ("[{id: %s, assess_ts: %s, max_score: 2.0, score: %d.0, type: 'mcq', title: %s, "
                                "resvalues: [{'1': %s}], params: [{'1': %s}, {'2': %s}], description: null, "
                                "duration: 4}]") % (
                        q(f"{cid}_q1"), q(cql_ts(ts)), score, q("Pick the learner's \"best\", answer"),
                        q('{"text":"A, it\'s"}'), q('{"text":"A"}'), q('{"text":"B"}'))
                    w["assessment_aggregator"].writerow([
                        course, batch, uid, cid, f"att-{uid}-{cid}", cql_ts(ts), f"{score}.0/2.0", cql_ts(ts),
                        question, "2.0", f"{score}.0", cql_ts(ts)])
                    counts["assessment_aggregator"] += 1
            completed = sum(1 for s in statuses.values() if s == 2)
            complete = completed == CONTENTS_PER_COURSE
            smap = "{" + ", ".join(f"{q(k)}: {v}" for k, v in statuses.items()) + "}"
            certs = f"[{{'identifier': {q(f'cert-{uid}-{ci}')}, 'name': 'Course completion', " \
                    f"'lastIssuedOn': '2021-07-01T10:00:00.000+0000', 'token': 'T{ci}'}}]" if complete else "[]"
            w["user_enrolments"].writerow([
                uid, course, batch, "True" if rnd.random() < 0.97 else "False", "", "",
                cql_ts(t0 + 86_400_000) if complete else "", "", smap, cql_ts(t0), cql_ts(t0) if ci % 2 else "",
                text_ts(t0), certs, f"do_{ci}_0", 1, completed, 2 if complete else 1])
            counts["user_enrolments"] += 1
            w["user_activity_agg"].writerow([
                "Course", course, uid, f"cb:{batch}", f"{{'completedCount': {completed}}}",
                f"{{'completedCount': {q(cql_ts(t0))}}}", f"{{'completedCount': {completed}.0}}"])
            counts["user_activity_agg"] += 1
            if done >= rows:
                break
    for f in files.values():
        f.close()
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("dir", type=Path)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--only-consumption", action="store_true", help="write user_content_consumption.csv only")
    a = p.parse_args()
    print(generate(a.dir, a.rows, a.seed, a.only_consumption))


if __name__ == "__main__":
    main()
