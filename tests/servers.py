"""Throwaway PostgreSQL and Redis servers for the tests (no pytest needed).

PostgreSQL: `VIEWER_TEST_PG_DSN` if set; else a server answering on 127.0.0.1:5432 (user postgres,
trust auth) unless `VIEWER_TEST_PG_FORCE_THROWAWAY=1`; else a temporary cluster (initdb + pg_ctl).
Each test run works in its own database (`create_database` / `drop_database`).

Redis: always a private `redis-server` on a free port (tests stop/restart/pause it).
`VIEWER_TEST_REDIS_SERVER` overrides the binary.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import glob
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "PostgresServer",
    "RedisClusterServer",
    "RedisServer",
    "ServerError",
    "create_database",
    "drop_database",
    "find_pg_bindir",
    "free_port",
    "off_loop",
    "describe_servers",
    "pg_choice",
    "pg_execute",
    "start_postgres",
]

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


class ServerError(RuntimeError):
    """A test server could not be found, started or stopped."""


# ---------------------------------------------------------------- helpers

_live: set = set()
_live_lock = threading.Lock()


def _register(obj) -> None:
    with _live_lock:
        _live.add(obj)
    _install_sigterm_handler()


def _install_sigterm_handler() -> None:
    """On SIGTERM (CI timeouts) clean up first, then die as usual; atexit alone would not run."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_installed = True
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def handler(signum, frame):
        _close_all()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, handler)


_sigterm_installed = False


def _unregister(obj) -> None:
    with _live_lock:
        _live.discard(obj)


@atexit.register
def _close_all() -> None:
    with _live_lock:
        objs = list(_live)
    for obj in objs:
        try:
            obj.close()
        except Exception:
            pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_cluster_port(attempts: int = 200) -> int:
    """A free port at most 55535 whose cluster bus port (+10000) is free too (redis-server's rule)."""
    import random

    for _ in range(attempts):
        port = random.randint(20000, 55535)
        try:
            for p in (port, port + 10000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise ServerError("no free port pair for a Redis Cluster node")


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def off_loop(fn, *args, **kwargs):
    """Call a blocking `fn` that may run its own event loop (asyncio.run), also from inside a
    running loop (e.g. a session fixture first requested by an async test): then in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args, **kwargs)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def _run_async(coro):
    """Run a coroutine to completion, also when called from inside a running event loop."""
    return off_loop(asyncio.run, coro)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


def _make_tmp(prefix: str) -> str:
    d = tempfile.mkdtemp(prefix=prefix)
    with open(os.path.join(d, "owner.pid"), "w") as f:
        f.write(f"{os.getpid()}\n")
    return d


def _stale_dirs(prefix: str) -> list[str]:
    """Temp dirs left by a test process that died without cleaning up (e.g. SIGKILL)."""
    out = []
    for d in glob.glob(os.path.join(tempfile.gettempdir(), prefix + "*")):
        owner = _read_pid(os.path.join(d, "owner.pid"))
        if owner is not None and owner != os.getpid() and not _pid_alive(owner):
            out.append(d)
    return out


def _tail(path: str, n: int = 30) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- PostgreSQL

def pg_execute(dsn: str, *statements: str, timeout: float = 10.0) -> list:
    """Run statements on one connection; returns the rows of the last (sync wrapper over asyncpg)."""
    import asyncpg

    async def go():
        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            rows = []
            for st in statements:
                rows = await conn.fetch(st, timeout=timeout)
            return rows
        finally:
            await conn.close(timeout=timeout)

    return _run_async(go())


def _pg_answers(dsn: str) -> bool:
    try:
        pg_execute(dsn, "SELECT 1", timeout=3)
        return True
    except Exception:
        return False


def _version_key(path: str):
    m = re.search(r"/(\d+(?:\.\d+)?)/bin$", path)
    return float(m.group(1)) if m else 0.0


def find_pg_bindir() -> str | None:
    """Directory holding both initdb and pg_ctl: PATH first, then distro locations (newest first)."""
    candidates = []
    if os.environ.get("VIEWER_TEST_PG_BINDIR"):
        candidates.append(os.environ["VIEWER_TEST_PG_BINDIR"])
    found = shutil.which("initdb")
    if found:
        candidates += [os.path.dirname(found), os.path.dirname(os.path.realpath(found))]
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin",
                    "/opt/homebrew/opt/postgresql*/bin", "/usr/local/opt/postgresql*/bin"):
        candidates += sorted(glob.glob(pattern), key=_version_key, reverse=True)
    for d in candidates:
        if all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl")):
            return d
    return None


def _run_as_user() -> str | None:
    """OS user to run PostgreSQL as when we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ServerError("running as root and no 'postgres' (or 'nobody') OS user to run PostgreSQL as")


def _force_throwaway() -> bool:
    return os.environ.get("VIEWER_TEST_PG_FORCE_THROWAWAY", "") not in ("", "0")


def pg_choice(force_throwaway: bool | None = None) -> tuple[str, str | None]:
    """Which PostgreSQL a `PostgresServer` uses: ("env", dsn), ("existing", dsn) or ("throwaway", None)."""
    if force_throwaway is None:
        force_throwaway = _force_throwaway()
    env_dsn = os.environ.get("VIEWER_TEST_PG_DSN")
    if env_dsn:
        return "env", env_dsn
    if not force_throwaway and _pg_answers(DEFAULT_PG_DSN):
        return "existing", DEFAULT_PG_DSN
    return "throwaway", None


def _safe_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)


def describe_servers() -> list[str]:
    """One line each for the PostgreSQL and the Redis a test run uses (printed by the test command)."""
    kind, dsn = pg_choice()
    if kind == "env":
        pg = f"the one in VIEWER_TEST_PG_DSN ({_safe_dsn(dsn)})"
    elif kind == "existing":
        pg = (f"the existing server at {urlsplit(dsn).netloc.split('@')[-1]} "
              "(VIEWER_TEST_PG_FORCE_THROWAWAY=1 starts a throwaway cluster instead)")
    elif find_pg_bindir():
        why = "VIEWER_TEST_PG_FORCE_THROWAWAY is set" if _force_throwaway() else "nothing answers on 127.0.0.1:5432"
        pg = (f"a throwaway cluster ({why}; initdb from {find_pg_bindir()}), "
              "started on first use, deleted at the end")
    else:
        pg = "none: nothing answers on 127.0.0.1:5432 and no initdb was found; PostgreSQL tests will fail"
    binary = os.environ.get("VIEWER_TEST_REDIS_SERVER") or shutil.which("redis-server")
    redis = (f"a throwaway redis-server ({binary}) on a free port, one per test process" if binary else
             "no redis-server found: Redis tests will fail")
    return [f"PostgreSQL: {pg}; each test process works in its own new database",
            f"Redis: {redis}"]


class PostgresServer:
    """Context manager exposing `.admin_dsn` (a superuser DSN to the `postgres` database).

    `.throwaway` tells whether it started its own cluster (stopped and deleted on `stop()`)."""

    def __init__(self, *, force_throwaway: bool | None = None, start_timeout: float = 60.0):
        if force_throwaway is None:
            force_throwaway = _force_throwaway()
        self.force_throwaway = force_throwaway
        self.start_timeout = start_timeout
        self.admin_dsn: str | None = None
        self.throwaway = False
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._tmp: str | None = None
        self._bindir: str | None = None
        self._user: str | None = None

    # -- lifecycle
    def start(self) -> "PostgresServer":
        if self.admin_dsn:
            return self
        kind, dsn = pg_choice(self.force_throwaway)
        if kind == "throwaway":
            self._start_cluster()
        else:
            self.admin_dsn = dsn
        return self

    def stop(self) -> None:
        if self.throwaway and self._tmp:
            data = os.path.join(self._tmp, "data")
            try:
                self._pg("pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop",
                         timeout=40, check=False)
            finally:
                self._kill_postmaster(data)
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None
        self.admin_dsn = None
        self.throwaway = False
        _unregister(self)

    close = stop

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- throwaway cluster
    def _pg(self, binary: str, *args: str, timeout: float, check: bool = True):
        cmd = [os.path.join(self._bindir, binary), *args]
        if self._user:
            if shutil.which("runuser"):
                cmd = ["runuser", "-u", self._user, "--", *cmd]
            else:
                cmd = ["su", self._user, "-s", "/bin/sh", "-c", shlex.join(cmd)]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        try:
            # cwd: the postgres user must be able to read its working directory.
            res = subprocess.run(cmd, cwd=self._tmp, env=env, stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise ServerError(f"{binary} timed out after {timeout}s: {shlex.join(cmd)}") from e
        if check and res.returncode != 0:
            raise ServerError(f"{binary} failed ({res.returncode}): {shlex.join(cmd)}\n"
                              f"{res.stdout}{res.stderr}")
        return res

    def _start_cluster(self) -> None:
        t0 = time.monotonic()
        self._bindir = find_pg_bindir()
        if not self._bindir:
            raise ServerError(
                "no PostgreSQL answers on 127.0.0.1:5432 and initdb/pg_ctl were not found "
                "(PATH, /usr/lib/postgresql/*/bin); install PostgreSQL or set VIEWER_TEST_PG_DSN")
        self._user = _run_as_user()
        self._sweep_stale()
        self._tmp = _make_tmp("viewer-pg-")
        _register(self)
        self.throwaway = True
        if self._user:
            pw = pwd.getpwnam(self._user)
            os.chown(self._tmp, pw.pw_uid, pw.pw_gid)
        data = os.path.join(self._tmp, "data")
        log = os.path.join(self._tmp, "postgres.log")
        self._pg("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale",
                 "--no-sync", "--no-instructions", timeout=self.start_timeout)
        last = None
        for _ in range(3):  # the free port may be taken before postgres binds it
            port = free_port()
            opts = (f"-p {port} -c listen_addresses=127.0.0.1 -k {shlex.quote(self._tmp)} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off")
            res = self._pg("pg_ctl", "-D", data, "-l", log, "-o", opts, "-w",
                           "-t", str(int(self.start_timeout)), "start",
                           timeout=self.start_timeout + 10, check=False)
            dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            if res.returncode == 0 and _pg_answers(dsn):
                self.port, self.admin_dsn = port, dsn
                self.startup_seconds = time.monotonic() - t0
                return
            last = f"{res.stdout}{res.stderr}\n--- postgres.log ---\n{_tail(log)}"
            self._pg("pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "10", "stop",
                     timeout=20, check=False)
        self.stop()
        raise ServerError(f"could not start a throwaway PostgreSQL cluster:\n{last}")

    @staticmethod
    def _kill_postmaster(data: str) -> None:
        pid = _read_pid(os.path.join(data, "postmaster.pid"))
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

    def _sweep_stale(self) -> None:
        for d in _stale_dirs("viewer-pg-"):
            data = os.path.join(d, "data")
            if os.path.exists(os.path.join(data, "postmaster.pid")):
                saved, self._tmp = self._tmp, d
                try:
                    self._pg("pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "10", "stop",
                             timeout=20, check=False)
                finally:
                    self._tmp = saved
                self._kill_postmaster(data)
            shutil.rmtree(d, ignore_errors=True)


def start_postgres(**kwargs) -> PostgresServer:
    """Started `PostgresServer`; call `.stop()` when done."""
    return PostgresServer(**kwargs).start()


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


def create_database(admin_dsn: str) -> str:
    """Create `viewer_test_<hex>` and return its DSN."""
    name = f"viewer_test_{uuid.uuid4().hex[:12]}"
    pg_execute(admin_dsn, f'CREATE DATABASE "{name}"')
    return _with_database(admin_dsn, name)


def drop_database(admin_dsn: str, dsn: str) -> None:
    """Drop the database named in `dsn`, disconnecting its sessions."""
    name = urlsplit(dsn).path.lstrip("/")
    if not name.startswith("viewer_test_"):
        raise ValueError(f"refusing to drop a database not made by create_database: {name!r}")
    try:
        pg_execute(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as e:
        if "syntax" not in str(e).lower():  # PostgreSQL < 13 has no WITH (FORCE)
            raise
        pg_execute(admin_dsn,
                   f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
                   f'DROP DATABASE IF EXISTS "{name}"')


# ---------------------------------------------------------------- Redis

def _resp(*args) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _redis_command(port: int, *args, timeout: float = 1.0) -> bytes:
    """One command; returns the raw reply (a simple line, or the body of a bulk string)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(_resp(*args))
        f = s.makefile("rb")
        line = f.readline()
        if line.startswith(b"$") and int(line[1:]) >= 0:
            return f.read(int(line[1:]))
        return line


def _sweep_stale_redis() -> None:
    for d in _stale_dirs("viewer-redis-"):
        pid = _read_pid(os.path.join(d, "redis.pid"))
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                is_redis = b"redis-server" in f.read()
        except (OSError, TypeError):
            is_redis = False
        if is_redis:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(d, ignore_errors=True)


class RedisServer:
    """A private redis-server on a free port: `.url`, `.stop()`, `.start()`, `.pause(s)`, `.close()`."""

    def __init__(self, *, port: int | None = None, start: bool = True, timeout: float = 15.0,
                 extra_args: tuple[str, ...] = ()):
        self.extra_args = extra_args
        self.binary = os.environ.get("VIEWER_TEST_REDIS_SERVER") or shutil.which("redis-server")
        if not self.binary or not os.access(self.binary, os.X_OK):
            raise ServerError("redis-server not found (install it, e.g. apt-get install redis-server, "
                              "or set VIEWER_TEST_REDIS_SERVER to its path)")
        self.timeout = timeout
        self.port = port or free_port()
        self.host = "127.0.0.1"
        _sweep_stale_redis()
        self._tmp = _make_tmp("viewer-redis-")
        self._log = os.path.join(self._tmp, "redis.log")
        self._proc: subprocess.Popen | None = None
        _register(self)
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start (again) on the same port; returns once PING answers."""
        if self.running:
            return
        if self._tmp is None:
            raise ServerError("RedisServer was closed")
        if _port_open(self.port):
            raise ServerError(f"port {self.port} is already in use; cannot start redis-server there")
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self._tmp, "--daemonize", "no", *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self._tmp)
        with open(os.path.join(self._tmp, "redis.pid"), "w") as f:
            f.write(f"{self._proc.pid}\n")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                raise ServerError(f"redis-server exited at start on port {self.port}:\n{_tail(self._log)}")
            try:
                # Check it is our process answering, not one that grabbed the port.
                info = _redis_command(self.port, "INFO", "server", timeout=0.5)
                if f"process_id:{self._proc.pid}\r\n".encode() in info:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        pid = self._proc.pid
        self._kill()
        raise ServerError(f"redis-server (pid {pid}) did not answer on port {self.port} "
                          f"within {self.timeout}s:\n{_tail(self._log)}")

    def stop(self) -> None:
        """Kill it (like a crash) and wait until the port is closed."""
        self._kill()
        deadline = time.monotonic() + self.timeout
        while _port_open(self.port):
            if time.monotonic() > deadline:
                raise ServerError(f"port {self.port} still open after stopping redis-server")
            time.sleep(0.02)

    def pause(self, seconds: float) -> None:
        """`CLIENT PAUSE <ms> ALL`: clients hang for `seconds`, the data is kept."""
        reply = _redis_command(self.port, "CLIENT", "PAUSE", int(seconds * 1000), "ALL")
        if not reply.startswith(b"+OK"):
            raise ServerError(f"CLIENT PAUSE failed: {reply!r}")

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired as e:
            raise ServerError(f"redis-server pid {proc.pid} did not exit") from e

    def close(self) -> None:
        try:
            self._kill()
        finally:
            if self._tmp:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None
            _unregister(self)

    def __enter__(self) -> "RedisServer":
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RedisClusterServer:
    """A private Redis Cluster of `masters` nodes (no replicas) on free ports: `.url` names one node,
    the client discovers the rest. Built with `redis-cli --cluster create` as an operator would."""

    def __init__(self, masters: int = 3, timeout: float = 30.0):
        self.timeout = timeout
        self.nodes: list[RedisServer] = []
        try:
            for _ in range(masters):
                self.nodes.append(RedisServer(port=free_cluster_port(), extra_args=("--cluster-enabled", "yes",
                                                          "--cluster-config-file", "nodes.conf",
                                                          "--cluster-node-timeout", "5000")))
            self._create()
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return self.nodes[0].url.rsplit("/", 1)[0]  # a cluster has database 0 only

    def _create(self) -> None:
        cli = shutil.which("redis-cli") or os.path.join(os.path.dirname(self.nodes[0].binary), "redis-cli")
        if not os.access(cli, os.X_OK):
            raise ServerError("redis-cli not found (it comes with redis-server / redis-tools)")
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        out = subprocess.run([cli, "--cluster", "create", *addrs, "--cluster-replicas", "0", "--cluster-yes"],
                             capture_output=True, timeout=self.timeout, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise ServerError(f"redis-cli --cluster create failed: {out.stdout.decode()[-2000:]}"
                              f"{out.stderr.decode()[-2000:]}")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            infos = [_redis_command(n.port, "CLUSTER", "INFO", timeout=1.0) for n in self.nodes]
            if all(b"cluster_state:ok" in i for i in infos):
                return
            time.sleep(0.05)
        raise ServerError(f"Redis Cluster on {addrs} not ok within {self.timeout}s")

    def close(self) -> None:
        for n in self.nodes:
            n.close()
        self.nodes = []

    def __enter__(self) -> "RedisClusterServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
