"""A collection's hierarchy, and what progress needs from it: its leaves, the required ones,
and each unit's required leaves. Pure functions; the rules are in docs/catalog.md.

The input may come from a remote catalog, so it is checked here, not only by the API."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidCollection

COLLECTION_MIME = "application/vnd.ekstep.content-collection"
MAX_DEPTH = 32  # real courses nest 3-5 levels; the bound keeps recursion safe
_ID = re.compile(r"[^\x00-\x1f\x7f]{1,256}")


@dataclass(frozen=True, slots=True)
class Collection:
    collection_id: str
    document: dict[str, Any]  # as sent
    leaf_nodes: tuple[str, ...]
    required_leaf_nodes: tuple[str, ...]
    units: dict[str, tuple[str, ...]] = field(default_factory=dict)  # unit id -> its required leaves
    updated_at: int | None = None

    @property
    def leaf_nodes_count(self) -> int:
        # The required count: progress is completed required / required, so "x of count" adds up.
        return len(self.required_leaf_nodes)


def is_optional(node: dict) -> bool:
    meta = node.get("relationalMetadata")
    value = meta.get("optional") if isinstance(meta, dict) else None
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _check_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidCollection("an id must be a string of 1 to 256 characters without control characters", where)
    return value


def _unique(ids) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids))


def _required(occurrences: list[tuple[str, bool]]) -> tuple[str, ...]:
    # A leaf used in several places is required if any one use of it is.
    return _unique(leaf for leaf, optional in occurrences if not optional)


def _walk(children: Any, where: str, depth: int, units: dict[str, tuple[str, ...]]) -> list[tuple[str, bool]]:
    """Leaf occurrences under `children` (inside `depth` units), each with whether an optional mark lies on its path.
    Records every unit's required leaves (optional marks counted from inside the unit)."""
    if children is None:
        return []
    if not isinstance(children, list):
        raise InvalidCollection("children must be a list", where)
    found: list[tuple[str, bool]] = []
    for i, node in enumerate(children):
        at = f"{where}.{i}"
        if not isinstance(node, dict):
            raise InvalidCollection("a child must be an object", at)
        node_id = _check_id(node.get("identifier"), f"{at}.identifier")
        mime = node.get("mimeType")
        if mime is not None and not isinstance(mime, str):
            raise InvalidCollection("mimeType must be a string", f"{at}.mimeType")
        optional = is_optional(node)
        if mime == COLLECTION_MIME:
            if depth >= MAX_DEPTH:
                raise InvalidCollection(f"units may nest at most {MAX_DEPTH} levels", at)
            inner = _walk(node.get("children"), f"{at}.children", depth + 1, units)
            # A unit reused in two places keeps the union of its uses.
            units[node_id] = _unique((*units.get(node_id, ()), *_required(inner)))
            found += [(leaf, optional or inner_optional) for leaf, inner_optional in inner]
        else:
            found.append((node_id, optional))  # a content: its own children, if any, are not ours to count
    return found


def from_hierarchy(doc: dict[str, Any], collection_id: str | None = None, updated_at: int | None = None) -> Collection:
    """Derive a Collection from a Sunbird hierarchy object. `collection_id` defaults to its identifier.
    Raises InvalidCollection (with the offending field) for a malformed document."""
    if not isinstance(doc, dict):
        raise InvalidCollection("a collection must be an object", "request")
    ident = doc.get("identifier")
    if collection_id is None:
        collection_id = _check_id(ident, "request.identifier")
    elif ident is not None and ident != collection_id:
        raise InvalidCollection("identifier differs from the collection id of the path", "request.identifier")
    for key in ("name", "description", "appIcon"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise InvalidCollection(f"{key} must be a string", f"request.{key}")
    units: dict[str, tuple[str, ...]] = {}
    occurrences = _walk(doc.get("children"), "request.children", 0, units)
    explicit = doc.get("leafNodes")
    if explicit is None:
        leaves = _unique(leaf for leaf, _ in occurrences)
        required = _required(occurrences)
    else:
        if not isinstance(explicit, list):
            raise InvalidCollection("leafNodes must be a list of ids", "request.leafNodes")
        leaves = _unique(_check_id(v, f"request.leafNodes.{i}") for i, v in enumerate(explicit))
        # The given list is the truth (as in Sunbird); a leaf is optional only if the
        # hierarchy shows it, and only optional uses of it.
        required_anywhere = set(_required(occurrences))
        optional_only = {leaf for leaf, _ in occurrences} - required_anywhere
        required = tuple(leaf for leaf in leaves if leaf not in optional_only)
    return Collection(collection_id, doc, leaves, required, units, updated_at)
