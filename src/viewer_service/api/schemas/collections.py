"""Request bodies of the catalog endpoints (api/collections.py): a Sunbird hierarchy object in the `{"request": ...}` wrapper.

Unknown fields are kept (the document is stored as sent); the ones the catalog reads are typed."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema, field_validator

from .common import Envelope, Id

_TRUE_FALSE = r"^\s*([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])\s*$"


class RelationalMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    # The pattern is documented; the validator below checks it, for an INVALID_VALUE answer.
    optional: StrictBool | Annotated[str, WithJsonSchema({"type": "string", "pattern": _TRUE_FALSE})] | None = Field(
        default=None, description='true, or the string "true": not required for completion')

    @field_validator("optional")
    @classmethod
    def _flag(cls, v):
        if isinstance(v, str) and v.strip().lower() not in ("true", "false"):
            raise ValueError('optional must be a boolean, "true" or "false"')
        return v


class Node(BaseModel):
    """A unit (mimeType application/vnd.ekstep.content-collection, with children) or a content (a leaf)."""
    model_config = ConfigDict(extra="allow")
    identifier: Id
    mimeType: str | None = None
    name: str | None = None
    children: list[Node] | None = None
    relationalMetadata: RelationalMetadata | None = None


class CollectionBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    identifier: Id | None = Field(default=None, description="if given, must equal the collection id of the path")
    name: str | None = None
    description: str | None = None
    appIcon: str | None = None
    leafNodes: list[Id] | None = Field(default=None, description="leaf content ids; derived from children when absent")
    children: list[Node] | None = None


class CollectionRequest(Envelope[CollectionBody]):
    pass
