"""`serve --workers N`: N processes, each accepting on a listening socket of its own bound with
SO_REUSEPORT, so that the kernel spreads new connections across them (by a hash of each
connection's addresses). With one socket shared by every process (uvicorn's own way), whichever
process woke first accepted a whole burst: one process took all 64 connections of the benchmark.

uvicorn's supervisor is kept (health checks, a dead process replaced, signals). It hands the same
socket list to every process it spawns, so what it hands here is a stand-in that binds the new
process's own socket when it is unpickled there."""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_own(host: str, port: int) -> socket.socket:
    """This process's socket in the port's SO_REUSEPORT group (every member sets the option)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        # Runs before uvicorn sets up logging in the new process. STARTUP_FAILURE makes the
        # supervisor stop instead of restarting the process in a loop.
        print(f"viewer-service: cannot listen on {host}:{port}: {e}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    return sock


class OwnSocket:
    """Pickled into each process the supervisor spawns; unpickled there, it is a fresh socket."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self):
        return bind_own, (self.host, self.port)


def claim_port(host: str, port: int) -> int:
    """Binds once without SO_REUSEPORT, to fail at once when anything listens there already: with
    SO_REUSEPORT alone a second `serve` on the same port would silently share the connections.
    Returns the port (the kernel's choice for 0)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return probe.getsockname()[1]


def run(config: uvicorn.Config) -> int:
    """Serves with config.workers processes until SIGINT/SIGTERM; the exit status."""
    try:
        port = claim_port(config.host, config.port)
    except OSError as e:
        print(f"viewer-service: cannot listen on {config.host}:{config.port}: {e}", file=sys.stderr)
        return 1
    config.port = port
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://%s:%d with %d processes, each on its own "
                               "SO_REUSEPORT socket (Press CTRL+C to quit)", config.host, port, config.workers)
    Multiprocess(config, sockets=[OwnSocket(config.host, port)]).run()
    return 0
