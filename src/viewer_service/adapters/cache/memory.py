"""In-process scope cache for the embedded single-process mode."""

from __future__ import annotations

from collections import OrderedDict

from ...domain.scope import Scope


class MemoryCache:
    kind = "memory"

    def __init__(self, max_scopes: int = 100_000):
        self.degraded = False
        self._max = max_scopes
        # scope -> [full?, {content id: (version, entry)}]; runs on one event loop, so each
        # method is atomic without locks.
        self._scopes: OrderedDict[Scope, list] = OrderedDict()

    async def read(self, scope, content_ids):
        slot = self._scopes.get(scope)
        if slot is None or not slot[0]:
            return None
        self._scopes.move_to_end(scope)
        entries = slot[1]
        if content_ids is None:
            return {cid: e for cid, (_, e) in entries.items()}
        return {cid: entries[cid][1] for cid in content_ids if cid in entries}

    async def put(self, entries, full=None):
        if full is not None:
            self._slot(full)[0] = True
        for scope, cid, version, entry in entries:
            items = self._slot(scope)[1]
            cur = items.get(cid)
            if cur is None or cur[0] < version:
                items[cid] = (version, entry)
        return True

    def _slot(self, scope: Scope) -> list:
        slot = self._scopes.get(scope)
        if slot is None:
            slot = self._scopes[scope] = [False, {}]
            while len(self._scopes) > self._max:
                self._scopes.popitem(last=False)
        else:
            self._scopes.move_to_end(scope)
        return slot

    async def invalidate(self, scopes):
        for s in scopes:
            self._scopes.pop(s, None)
        return True

    async def ping(self):
        return None

    async def close(self):
        self._scopes.clear()
