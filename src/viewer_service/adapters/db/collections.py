"""Repository for the collection catalog."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.collections import Collection
from .sql import insert
from .tables import collection as t


def _values(c: Collection, now_ms: int) -> dict:
    return {
        "collection_id": c.collection_id,
        "document": c.document,
        "leaf_ids": list(c.leaf_nodes),
        "required_leaf_ids": list(c.required_leaf_nodes),
        # Pairs, not an object: JSONB reorders object keys, and unit order is the course's order.
        "units": [[unit, list(leaves)] for unit, leaves in c.units.items()],
        "updated_at": now_ms,
    }


async def load(conn: AsyncConnection, collection_id: str) -> Collection | None:
    r = (await conn.execute(sa.select(t).where(t.c.collection_id == collection_id))).first()
    if r is None:
        return None
    return Collection(r.collection_id, r.document, tuple(r.leaf_ids), tuple(r.required_leaf_ids),
                      {unit: tuple(leaves) for unit, leaves in r.units}, r.updated_at)


async def upsert(conn: AsyncConnection, c: Collection, now_ms: int) -> None:
    stmt = insert(conn, t).values(_values(c, now_ms))
    cols = ("document", "leaf_ids", "required_leaf_ids", "units", "updated_at")
    await conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.collection_id],
                                                  set_={n: stmt.excluded[n] for n in cols}))


async def insert_absent(conn: AsyncConnection, c: Collection, now_ms: int) -> bool:
    """Insert unless the collection exists (a PUT wins over a fetched copy). True if inserted."""
    stmt = insert(conn, t).values(_values(c, now_ms)).on_conflict_do_nothing().returning(t.c.collection_id)
    return (await conn.execute(stmt)).first() is not None


async def structure(conn: AsyncConnection, collection_id: str) -> tuple | None:
    """What progress depends on: (leaf ids, required leaf ids, units), or None if unknown."""
    r = (await conn.execute(sa.select(t.c.leaf_ids, t.c.required_leaf_ids, t.c.units)
                            .where(t.c.collection_id == collection_id))).first()
    return None if r is None else tuple(r)


async def updated_at(conn: AsyncConnection, collection_id: str) -> int | None:
    return (await conn.execute(sa.select(t.c.updated_at).where(t.c.collection_id == collection_id))).scalar()
