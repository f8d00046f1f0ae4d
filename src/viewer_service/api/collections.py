"""The collection catalog endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic_core import from_json

from ..domain.collections import Collection
from ..errors import CollectionNotFound
from .openapi import documented
from .parsing import parse, path_id
from .schemas.collections import CollectionRequest
from .envelope import envelope, msgid
from .state import served

router = APIRouter(prefix="/v1/collection", tags=["collections"])


def _collection_id(value: str) -> str:
    return path_id(value, "collectionId")


def result(c: Collection) -> dict:
    doc = c.document
    return {
        "collectionId": c.collection_id,
        "name": doc.get("name"),
        "description": doc.get("description"),
        "appIcon": doc.get("appIcon"),
        "leafNodes": list(c.leaf_nodes),
        "requiredLeafNodes": list(c.required_leaf_nodes),
        "leafNodesCount": c.leaf_nodes_count,
        "units": {unit: list(leaves) for unit, leaves in c.units.items()},
        "updatedAt": c.updated_at,
        "document": doc,
    }


@router.put("/{collectionId}", openapi_extra=documented(CollectionRequest),
            summary="Register or replace a collection (a Sunbird hierarchy object)")
async def put_collection(request: Request, collectionId: str):
    app = served(request)
    app.require_privileged(request, "only an admin or service role may write the catalog")
    cid = _collection_id(collectionId)
    body = await parse(request, CollectionRequest)
    # The document as sent, with the fields the model does not know (pydantic's parser, like the
    # model's: large integers stay integers, and put() refuses them rather than rounding them).
    doc = from_json(await request.body())["request"]
    c = await app.catalog.put(cid, doc)
    return envelope("api.collection.put", result(c), msgid=msgid(request, body))


@router.get("/{collectionId}", summary="Read a collection and its derived leaves")
async def get_collection(request: Request, collectionId: str):
    app = served(request)
    app.auth.authenticate(request.headers)  # any valid token may read the catalog
    cid = _collection_id(collectionId)
    c = await app.catalog.get(cid)
    if c is None:
        raise CollectionNotFound(f"collection {cid!r} is not in the catalog", "collectionId")
    return envelope("api.collection.get", result(c), msgid=msgid(request))

