"""The fixed floor: a minimal FastAPI app that the benchmark compares viewer-service with.

It never imports viewer-service, so it does not move when the service's stack does. bench/run.py
starts it as its own process with uvicorn's defaults (one process; uvloop and httptools when
installed, as `uvicorn[standard]` does):

    .venv/bin/python -m uvicorn --app-dir bench floor_app:app --port 8090

Each route validates the body the matching phase sends with a pydantic model, as FastAPI does
for a typed body parameter, and answers a constant Sunbird envelope encoded with orjson; no I/O.

    POST /bench/floor         a view/update body     (floor.lua, the floor of writes/reads/mix)
    POST /bench/floor/assess  a 10-question submit   (assess_floor.lua)
    POST /bench/floor/state   an lms content state   (state_floor.lua)
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, Field, StringConstraints

Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Params(BaseModel):
    msgid: str | None = None


class UpdateBody(BaseModel):
    userId: Id | None = None
    contentId: Id
    collectionId: Id | None = None
    contextId: Id | None = None
    ts: int | None = None
    progress: Annotated[int, Field(ge=0, le=100)] | None = None
    progressDetails: dict[str, Any] | None = None
    timespent: Annotated[float, Field(ge=0)] | None = None


class SubmitBody(BaseModel):
    userId: Id | None = None
    contentId: Id
    collectionId: Id | None = None
    contextId: Id | None = None
    attemptId: Id
    assessmentTs: int | None = None
    assessments: list[dict[str, Any]] = Field(min_length=1)


class ContentState(BaseModel):
    contentId: Id
    courseId: Id
    batchId: Id
    status: Annotated[int, Field(ge=0, le=2)]
    progress: Annotated[int, Field(ge=0, le=100)] | None = None
    lastAccessTime: str | None = None


class StateBody(BaseModel):
    userId: Id
    contents: list[ContentState] = Field(min_length=1)


class UpdateRequest(BaseModel):
    id: str | None = None
    ver: str | None = None
    params: Params | None = None
    request: UpdateBody


class SubmitRequest(BaseModel):
    params: Params | None = None
    request: SubmitBody


class StateRequest(BaseModel):
    params: Params | None = None
    request: StateBody


def _envelope(api: str) -> dict:
    return {"id": api, "ver": "1.0", "ts": "2026-01-01T00:00:00.000Z",
            "params": {"resmsgid": "00000000-0000-0000-0000-000000000000", "msgid": None, "err": None,
                       "status": "successful", "errmsg": None},
            "responseCode": "OK", "result": {"do_bench_1": "SUCCESS"}}


UPDATE, ASSESS, STATE = _envelope("api.view.update"), _envelope("api.assessment.submit"), _envelope("api.content.state.update")

app = FastAPI()


def _json(doc: dict) -> Response:
    return Response(orjson.dumps(doc), media_type="application/json")


@app.get("/health")
async def health():
    return _json({"ok": True})


@app.post("/bench/floor")
async def floor(body: UpdateRequest):
    return _json(UPDATE)


@app.post("/bench/floor/assess")
async def floor_assess(body: SubmitRequest):
    return _json(ASSESS)


@app.post("/bench/floor/state")
async def floor_state(body: StateRequest):
    return _json(STATE)
