"""Several processes: `serve --workers N` spreads connections across its processes."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

from conftest import wait_until
from helpers import clean_env, wait_answering
from servers import free_port

BIN = Path(sys.executable).with_name("viewer-service")


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(d))
    return out


def _established(port: int) -> set[int]:
    """Socket inodes of the server side of established TCP connections on 127.0.0.1:port."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        local, state, inode = f[1], f[3], int(f[9])
        if state == "01" and int(local.split(":")[1], 16) == port:
            inodes.add(inode)
    return inodes


def _queued(port: int) -> int:
    """Connections waiting in the accept queues of the listening sockets on 127.0.0.1:port."""
    n = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "0A" and int(f[1].split(":")[1], 16) == port:
            n += int(f[4].split(":")[1], 16)  # rx_queue of a listening socket: its accept backlog
    return n


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                out.add(int(target[8:-1]))
    except OSError:
        pass
    return out


def _ask_health(conns: list[socket.socket]) -> None:
    """One GET /health on each connection, answered before the next is asked; keeps them open."""
    for c in conns:
        c.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = c.recv(4096)
            assert chunk, "the server closed the connection"
            got += chunk
        assert got.startswith(b"HTTP/1.1 200"), got[:200]


async def _wait_started(proc: subprocess.Popen, n: int, timeout: float = 90) -> list[int]:
    """The serving processes, once `n` of them have finished their startup (each logs it)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    seen: list[str] = []
    while sum("Application startup complete" in line for line in seen) < n:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stderr.readline), max(0.1, end - loop.time()))
        if not line:
            raise AssertionError(f"serve exited with {proc.wait(timeout=10)}:\n{''.join(seen)[-3000:]}")
        seen.append(line.decode(errors="replace"))
    return [p for p in _children(proc.pid) if "resource_tracker" not in Path(f"/proc/{p}/cmdline").read_text()]


async def test_serve_workers_spreads_connections_across_its_processes(pg_url, redis_server):
    """64 connections at once, as the benchmark opens them: each of the 2 processes holds a share
    (each has its own SO_REUSEPORT socket, and the kernel picks the socket by a hash of the
    connection's addresses)."""
    port = free_port()
    env = clean_env(VIEWER_DATABASE_URL=pg_url, VIEWER_REDIS_URL=redis_server.url, VIEWER_ACCESS_LOG="false",
                    VIEWER_REDIS_PREFIX=f"vt-procs-{random.getrandbits(32):x}:")
    proc = subprocess.Popen([BIN, "serve", "--port", str(port), "--workers", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        workers = await _wait_started(proc, 2)
        assert len(workers) == 2, workers
        base = f"http://127.0.0.1:{port}"
        await wait_answering(base + "/health", proc)
        # A burst of connections while one process is busy (here: stopped), as when wrk opens its 64
        # at once: with one socket shared by both, the other process accepts the whole burst.
        busy, other = workers
        os.kill(busy, signal.SIGSTOP)
        try:
            conns = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(64)]
            # Until the running process has accepted what it will: the rest wait in an accept queue.
            async def settled():
                return len(_socket_inodes(other) & _established(port)) + _queued(port) == 64

            assert await wait_until(settled)
        finally:
            os.kill(busy, signal.SIGCONT)
        try:
            await asyncio.get_running_loop().run_in_executor(None, _ask_health, conns)
            open_now = _established(port)
            held = {pid: len(_socket_inodes(pid) & open_now) for pid in workers}
        finally:
            for c in conns:
                c.close()
        assert sum(held.values()) == 64, held
        # Spread by a hash of each connection's ports: below 12 of 64 is ~1e-7 for a fair split.
        assert min(held.values()) >= 12, held
        # SO_REUSEPORT would let a second `serve` on the port share the connections: it is refused.
        second = subprocess.run([BIN, "serve", "--port", str(port), "--workers", "2"], env=env, timeout=60,
                                capture_output=True)
        assert second.returncode == 1, second.stderr.decode()[-2000:]
        assert f"cannot listen on 127.0.0.1:{port}" in second.stderr.decode()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()[-3000:]
