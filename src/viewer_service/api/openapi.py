"""The OpenAPI document tells the truth: every operation declares each status it answers, all in
the envelope (no FastAPI 422: the service never answers it), 503 with Retry-After. Bodies are
parsed by api/parsing.py, not by FastAPI, so each route names its body model with `documented`."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, TypeAdapter

from .schemas.common import Id

_NULLABLE_STR = {"type": ["string", "null"]}

ENVELOPE = {
    "type": "object",
    "description": "The Sunbird response envelope",
    "required": ["id", "ver", "ts", "params", "responseCode", "result"],
    "properties": {
        "id": {"type": "string", "examples": ["api.view.start"]},
        "ver": {"type": "string"},
        "ts": {"type": "string", "description": 'UTC, "2021-06-23 05:37:40:575+0000"'},
        "params": {
            "type": "object",
            "required": ["resmsgid", "msgid", "err", "status", "errmsg"],
            "properties": {
                "resmsgid": {"type": "string"}, "msgid": _NULLABLE_STR, "err": _NULLABLE_STR,
                "status": {"type": "string", "enum": ["success", "failed"]}, "errmsg": _NULLABLE_STR,
            },
        },
        "responseCode": {"type": "string"},
        "result": {},
    },
}
ERROR = {
    "allOf": [{"$ref": "#/components/schemas/Envelope"}, {
        "type": "object",
        "properties": {
            "params": {"type": "object", "properties": {"status": {"const": "failed"}, "err": {"type": "string"}}},
            "result": {
                "type": "object",
                "required": ["field", "errors"],
                "properties": {
                    "field": _NULLABLE_STR,
                    "errors": {"type": "array", "items": {
                        "type": "object", "required": ["field", "code", "message"],
                        "properties": {"field": _NULLABLE_STR, "code": {"type": "string"},
                                       "message": {"type": "string"}}}},
                },
            },
        },
    }],
}

_WHY = {
    400: "Bad input: `params.err` is the error code, `result.field` the field at fault",
    401: "No valid token (VIEWER_AUTH=jwt)",
    403: "The token may not act for this learner, or lacks an admin/service role",
    404: "The named view, enrolment, context, collection or download does not exist",
    413: "The body is larger than VIEWER_MAX_BODY_BYTES",
    415: "The body is not application/json",
    503: "The database is unavailable (down or restarting): retry after Retry-After seconds",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying",
                                "schema": {"type": "integer"}, "required": True}}

# (method, path) -> extra statuses; every API operation also has 400, 401, 403 and 503.
_NOT_FOUND = {
    ("post", "/v1/view/update"), ("post", "/v1/view/end"),
    ("get", "/v1/collection/{collectionId}"), ("get", "/v1/context/{contextId}"),
    ("post", "/v1/enrol"), ("post", "/v1/unenrol"), ("post", "/v1/certificate/issued"),
    ("post", "/v1/summary/read"), ("delete", "/v1/summary/delete/{userId}"),
    ("get", "/v1/summary/download/{userId}"), ("get", "/v1/summary/download/{userId}/files/{token}"),
    ("get", "/v1/report/context/{contextId}"), ("get", "/v1/report/context/{contextId}/stats"),
    ("post", "/private/v1/content/state/read"), ("get", "/private/v1/user/courses/list/{uid}"),
    ("post", "/private/v2/user/courses/list"),  # 404 while VIEWER_PRIVATE_ROUTES is off
}


def _statuses(method: str, path: str, op: dict) -> set[int]:
    if path == "/health":
        return set()
    if path == "/health/service":
        return {503}
    found = {400, 401, 403, 503}
    if "requestBody" in op or method in ("post", "put", "delete"):
        found |= {413, 415}
    if (method, path) in _NOT_FOUND:
        found.add(404)
    return found


def _response(status: int) -> dict:
    out = {"description": _WHY[status],
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}
    if status == 503:
        out["headers"] = _RETRY_AFTER
    return out


# Operations whose 200 is a file (CSV or JSON) rather than the envelope, for some parameters.
_FILES = {"/v1/summary/download/{userId}/files/{token}", "/v1/report/context/{contextId}"}


def _parameter(path: str, param: dict, id_schema: dict) -> None:
    if param["in"] == "path":
        param["schema"] = {**id_schema, "pattern": id_schema["pattern"].replace("\\x1f", "\\x1f/"),
                           "description": "1-256 characters, no control characters, no /"}
    elif path == "/v1/summary/download/{userId}" and param["name"] == "format":
        # services/downloads.py:check_format: any case; empty means json.
        param["schema"] = {"type": "string", "pattern": "^([Cc][Ss][Vv]|[Jj][Ss][Oo][Nn])?$", "default": "json"}


_NOT_NULL = {"not": {"type": "null"}}
# Reads name what they read: contents, or a collection (to read all its contents).
_READS = ("ReadBody", "AssessmentReadBody")
_NAMES_WHAT = [{"required": ["contentId"], "properties": {"contentId": _NOT_NULL}},
               {"required": ["collectionId"], "properties": {"collectionId": _NOT_NULL}}]


def _bodies(components: dict, id_schema: dict, user_in_body: bool) -> None:
    for name, body in components.items():
        props = body.get("properties", {})
        if user_in_body and "userId" in props and name not in ("Certificate", "EraseBody"):
            # Without tokens (VIEWER_AUTH=none) the body names the learner.
            props["userId"] = {**id_schema, "description": "the learner (required without VIEWER_AUTH=jwt)"}
            body["required"] = sorted({*body.get("required", []), "userId"})
        if name in _READS:
            body["anyOf"] = _NAMES_WHAT


# What a free-form field (a context's extra fields, a certificate, progressDetails, ASSESS
# events, a collection document) may hold: api/parsing.py refuses the rest.
_NO_NUL = "^[^\\x00]*$"
_VALUE = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE = {
    "description": "Any JSON value, except integers beyond 64 bits and strings (or keys) with NUL",
    "anyOf": [
        {"type": "null"}, {"type": "boolean"},
        {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
        {"type": "number"},
        {"type": "string", "pattern": _NO_NUL},
        {"type": "array", "items": _VALUE},
        {"type": "object", "propertyNames": {"pattern": _NO_NUL}, "additionalProperties": _VALUE},
    ],
}


def _free_form(node):
    """Every `{}` (any value) in a request schema becomes a JsonValue, every open object's
    extra members too, every integer has 64-bit bounds, every string without a pattern refuses NUL."""
    if isinstance(node, list):
        return [_free_form(x) for x in node]
    if not isinstance(node, dict):
        return node
    if not node or set(node) <= {"title", "description", "default"} and "$ref" not in node:
        return {**node, **_VALUE}
    out = {k: _free_form(v) if k in ("properties", "items", "anyOf", "allOf", "oneOf", "prefixItems") or
           k == "additionalProperties" and isinstance(v, dict) else v for k, v in node.items()}
    if "properties" in out:
        out["properties"] = {k: _free_form(v) for k, v in node["properties"].items()}
    if out.get("type") == "object" and out.get("additionalProperties", True) is True:
        out["additionalProperties"] = _VALUE
        out.setdefault("propertyNames", {"pattern": _NO_NUL})
    if out.get("type") == "integer":  # 64 bits, like the columns they go to
        out.setdefault("minimum", -(2**63))
        out.setdefault("maximum", 2**63 - 1)
    if out.get("type") == "string" and "pattern" not in out and "format" not in out and "enum" not in out:
        out["pattern"] = _NO_NUL
    return out


def make_truthful(schema: dict, id_schema: dict, auth: str = "none") -> dict:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in list(components):
        components[name] = _free_form(components[name])
    components["JsonValue"] = JSON_VALUE
    _bodies(components, id_schema, auth == "none")
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Envelope"] = ENVELOPE
    components["ErrorEnvelope"] = ERROR
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            for param in op.get("parameters", ()):
                _parameter(path, param, id_schema)
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            ok = responses.setdefault("200", {"description": "Successful Response"})
            if path in _FILES:
                ok["content"] = {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {}}}
            else:
                ok["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}
            for status in sorted(_statuses(method, path, op)):
                responses[str(status)] = _response(status)
    return schema


_documented: set[type[BaseModel]] = set()


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
            auth = served.settings.auth if served else "none"
            app.openapi_schema = make_truthful(schema, TypeAdapter(Id).json_schema(), auth)
        return app.openapi_schema

    app.openapi = openapi
