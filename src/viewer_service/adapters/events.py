"""Event sinks: where the outbox dispatcher delivers events (VIEWER_EVENT_SINK).

`publish(events)` takes (mid, payload) pairs and returns only once the sink has them all.
Delivery is at least once, so each sink drops what it already holds, by mid."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from typing import Protocol

import orjson

from .redis_conn import connect, tag

Events = list[tuple[str, dict]]
DEDUP_TTL_SECONDS = 7 * 24 * 3600


class Sink(Protocol):
    async def publish(self, events: Events, *, maybe_written: bool = False) -> None: ...

    async def close(self) -> None: ...


def encode(payload: dict) -> bytes:
    # Sorted keys: the same event is the same bytes whichever database stored it (JSONB reorders).
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


class NullSink:
    async def publish(self, events: Events, *, maybe_written: bool = False) -> None:
        pass

    async def close(self) -> None:
        pass


_path_locks: dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()


def _path_lock(path: str) -> threading.Lock:
    with _path_locks_guard:
        return _path_locks.setdefault(path, threading.Lock())


class FileSink:
    """JSON lines appended to a file, fsynced before publish returns.

    Writers serialise on a per-path lock (threads of this process) and flock (other processes),
    so a recovery scan and its write are one step: a mid found absent cannot appear meanwhile.
    The I/O runs in a thread (asyncio.to_thread): the event loop never waits on the disk."""

    def __init__(self, path: str):
        if not path:
            raise ValueError("VIEWER_EVENT_SINK: file: needs a path, e.g. file:./viewer-events.jsonl")
        self.path = os.path.abspath(path)

    async def publish(self, events: Events, *, maybe_written: bool = False) -> None:
        if events:
            await asyncio.to_thread(self._append, events, maybe_written)

    async def close(self) -> None:
        pass

    def _append(self, events: Events, maybe_written: bool) -> None:
        created = not os.path.exists(self.path)
        with _path_lock(self.path):
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if maybe_written:
                    present = _mids_in(fd, {mid for mid, _ in events})
                    events = [(mid, p) for mid, p in events if mid not in present]
                if events:
                    # A crash mid-write can leave a partial last line: never append to it.
                    size = os.fstat(fd).st_size
                    head = b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""
                    _write_all(fd, head + b"".join(encode(p) + b"\n" for _, p in events))
                    os.fsync(fd)
            finally:
                os.close(fd)  # also drops the flock
        if created:
            _fsync_dir(os.path.dirname(self.path))


def _mids_in(fd: int, wanted: set[str]) -> set[str]:
    """Which of `wanted` the file already holds (a linear scan: only done when recovering)."""
    found: set[str] = set()
    with open(os.dup(fd), "rb") as f:
        f.seek(0)
        for line in f:
            try:
                mid = orjson.loads(line).get("mid")
            except (orjson.JSONDecodeError, AttributeError):
                continue  # a torn or foreign line
            if mid in wanted:
                found.add(mid)
                if len(found) == len(wanted):
                    break
    return found


def _write_all(fd: int, data: bytes) -> None:
    # One write() per batch, so concurrent appenders never interleave inside it; loop only on
    # a short write (e.g. disk full), which then fails on the next call.
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# KEYS[1]: the stream; KEYS[2..]: one dedup marker per event; ARGV[1]: marker TTL; ARGV[2..]: events.
# A script runs atomically: the marker and the entry are written together or not at all.
_PUBLISH = """
local added = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 'event', ARGV[i])
    added = added + 1
  end
end
return added
"""


class RedisStreamSink:
    """XADD to the stream `<prefix><name>`, field `event` = the JSON. A marker
    `<prefix>evt:{<prefix><name>}:<mid>` (kept 7 days) makes a re-publish of the same event a no-op;
    its hash tag is the stream's name, so on a Redis Cluster marker and stream share a slot."""

    def __init__(self, url: str | None, stream: str, prefix: str = "vs:", timeout: float = 5.0,
                 cluster: bool = False):
        if not stream:
            raise ValueError("VIEWER_EVENT_SINK: redis-stream: needs a stream name, e.g. redis-stream:events")
        if not url:
            raise ValueError("VIEWER_EVENT_SINK=redis-stream:... needs VIEWER_REDIS_URL")
        if "{" in stream + prefix or "}" in stream + prefix:
            raise ValueError("VIEWER_EVENT_SINK: the stream name and VIEWER_REDIS_PREFIX may not contain '{' or '}' "
                             "(Redis Cluster hash tags are the service's own)")
        self.stream = f"{prefix}{stream}"
        self._markers = f"{prefix}evt:{tag(self.stream)}:"
        # One quick retry (a connection broken by a Redis restart); the dispatcher retries the rest.
        self.client = connect(url, cluster=cluster, timeout=timeout, retries=1)
        self._script = self.client.register_script(_PUBLISH)

    async def publish(self, events: Events, *, maybe_written: bool = False) -> None:
        if not events:
            return
        keys = [self.stream, *(self._markers + mid for mid, _ in events)]
        await self._script(keys=keys, args=[DEDUP_TTL_SECONDS, *(encode(p) for _, p in events)])

    async def close(self) -> None:
        await self.client.aclose()


def make_sink(spec: str, redis_url: str | None = None, prefix: str = "vs:", cluster: bool = False) -> Sink:
    """`file:<path>`, `redis-stream:<name>` or `none` (the VIEWER_EVENT_SINK setting)."""
    spec = spec.strip()
    if spec == "none":
        return NullSink()
    kind, sep, arg = spec.partition(":")
    if sep and kind == "file":
        return FileSink(arg)
    if sep and kind == "redis-stream":
        return RedisStreamSink(redis_url, arg, prefix, cluster=cluster)
    raise ValueError(f"VIEWER_EVENT_SINK: unknown sink {spec!r}; expected file:<path>, redis-stream:<name> or none")
