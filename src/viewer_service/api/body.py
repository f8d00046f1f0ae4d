"""Request bodies are parsed and validated in one step by pydantic (its JSON parser), which is
markedly cheaper than FastAPI's generic body handling on the hot write path. Errors take the
same route as FastAPI's, and the OpenAPI document still shows every body schema."""

from __future__ import annotations

import math
import re
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import from_json

from .openapi import make_truthful
from .schemas import Id

M = TypeVar("M", bound=BaseModel)
_documented: set[type[BaseModel]] = set()


async def parse(request: Request, model: type[M]) -> M:
    body = await request.body()
    bad = unstorable(body)
    if bad:
        path, why = bad
        raise RequestValidationError([{"type": "value_error", "loc": ("body", *path), "msg": why}])
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]
        ) from None


# Values JSON allows but nothing downstream can hold: integers beyond 64 bits (orjson, BIGINT),
# NaN/Infinity and overflowing floats (JSON output, PostgreSQL's JSONB), the NUL character
# (PostgreSQL text and JSONB). One check here covers every field of every body, free-form ones
# included; it is a cheap scan of the raw bytes, and only a body it flags is walked.
_SUSPECT = re.compile(rb"\\u0000|(?:^|[\[:,])\s*-?(?:\d{19}|NaN|Infinity)|\d[eE]\+?\d{3}")
_INT64 = (-(2**63), 2**63 - 1)


def _unstorable(value: Any, path: tuple) -> tuple[tuple, str] | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            return path, "a number that does not fit in 64 bits"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return path, "a number that is not finite"
    elif isinstance(value, str):
        if "\x00" in value:
            return path, "the NUL character is not allowed"
    elif isinstance(value, dict):
        for k, v in value.items():
            found = _unstorable(k, path + (k,)) or _unstorable(v, path + (k,))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _unstorable(v, path + (i,))
            if found:
                return found
    return None


def unstorable(body: bytes) -> tuple[tuple, str] | None:
    """(path, why) of the first value in a JSON body that nothing downstream can hold, else None.
    Every route that reads a body checks it (this module's `parse`, the lms-service routes)."""
    if not _SUSPECT.search(body):
        return None
    try:
        doc = from_json(body)
    except ValueError:
        return None  # not JSON: the parser says so
    return _unstorable(doc, ())


def documented(model: type[BaseModel]) -> dict:
    """`openapi_extra` for a route whose body is `model`."""
    _documented.add(model)
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def install_openapi(app: FastAPI) -> None:
    def openapi():
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in _documented:
                js = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(js.pop("$defs", {}))
                components[model.__name__] = js
            served = getattr(app.state, "app", None)  # its settings, once started
            app.openapi_schema = make_truthful(schema, _id.json_schema(), served.settings.auth if served else "none")
        return app.openapi_schema

    app.openapi = openapi


_id = TypeAdapter(Id)


def path_id(value: str, field: str) -> str:
    """An id taken from the URL path, checked like ids in bodies."""
    try:
        return _id.validate_python(value)
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": (field,)} for err in e.errors(include_url=False)]) from None
