"""Server lifecycle for the benchmarks: `viewer-service` processes (serve, worker) and the fixed floor
app, each in its own process group with its output in a log file; waiting for them to answer; stopping
them (SIGTERM to the group, SIGKILL after 30 s); reading their logs afterwards."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness import BENCH, ROOT, BenchError, free_port
from procfs import process_tree, role, rss_kb


def service_command() -> list[str]:
    if os.environ.get("BENCH_SERVICE_CMD"):  # e.g. a stand-in server while testing a benchmark
        return shlex.split(os.environ["BENCH_SERVICE_CMD"])
    for exe in (Path(sys.executable).parent / "viewer-service", shutil.which("viewer-service"),
                ROOT / ".venv" / "bin" / "viewer-service"):
        if exe and Path(exe).exists():
            return [str(exe)]
    raise BenchError("viewer-service not found; run with the project's venv: .venv/bin/python bench/<script>.py")


def tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


LOG_PATTERNS = {
    "error": re.compile(r"\b(ERROR|CRITICAL)\b"),
    "warning": re.compile(r"\bWARNING\b"),
    "traceback": re.compile(r"^Traceback \(most recent call last\)"),
}


def scan_log(path: Path) -> dict:
    """Lines, ERROR, WARNING and traceback counts of a log, and its first notable lines."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    counts = {k: sum(1 for ln in lines if p.search(ln)) for k, p in LOG_PATTERNS.items()}
    notable = [ln for ln in lines if any(p.search(ln) for p in LOG_PATTERNS.values())]
    return {"lines": len(lines), **counts, "first": notable[:8]}


class LoggedProcess:
    """A subprocess in its own process group (so that stopping it stops its children), its output
    appended to `log_path`."""

    def __init__(self, name: str, log_path: Path):
        self.name, self.log_path = name, log_path
        self.proc: subprocess.Popen | None = None
        self._log = None

    def spawn(self, cmd: list[str], env: dict, cwd: str) -> None:
        self._log = open(self.log_path, "ab")
        self._log.write(f"# {' '.join(cmd)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self, waiting_for: str) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with {self.proc.returncode} before {waiting_for}; "
                             f"log {self.log_path}:\n{tail(self.log_path)}")

    def wait_answering(self, url: str, timeout: float, interval: float = 0.2) -> float:
        """Seconds until GET `url` answers 200; BenchError if the process exits or time runs out."""
        t0 = time.monotonic()
        while True:
            self._check_alive(f"{url} answered")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"{url} did not answer within {timeout:.0f} s; log {self.log_path}:\n"
                                 f"{tail(self.log_path)}")
            time.sleep(interval)

    def wait_logged(self, needle: str, timeout: float = 60) -> None:
        t0 = time.monotonic()
        while needle not in self.log_path.read_text(errors="replace"):
            self._check_alive(f"it logged {needle!r}")
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"{self.name} did not log {needle!r} within {timeout:.0f} s:\n{tail(self.log_path)}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this script created
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"bench: {self.name} did not stop within 30 s, killing it", file=sys.stderr)
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        if self._log:
            self._log.close()
            self._log = None


class Server(LoggedProcess):
    """`viewer-service serve --workers N [--migrate]` on a free port, measured from outside."""

    def __init__(self, env: dict[str, str], workers: int, migrate: bool, log_path: Path):
        super().__init__("server", log_path)
        self.env, self.workers, self.migrate = env, workers, migrate
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = service_command() + ["serve", "--host", "127.0.0.1", "--port", str(self.port),
                                   "--workers", str(self.workers)]
        return cmd + ["--migrate"] if self.migrate else cmd

    def start(self, timeout: float) -> float:
        """Seconds from the start to /health answering."""
        self.spawn(self.command(), self.env, str(ROOT))
        startup = self.wait_answering(self.url + "/health", timeout)
        # Let uvicorn's other workers come up too before the first measurement.
        if self.workers > 1:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if sum(1 for p in self.pids() if role(p, self.proc.pid) == "worker") >= self.workers:
                    break
                time.sleep(0.2)
            time.sleep(1.0)
        return startup

    def get_json(self, path: str):
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def put_json(self, path: str, body: dict):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="PUT",
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.alive() else []

    def memory(self) -> dict:
        pids = self.pids()
        procs = [{"pid": p, "role": role(p, self.proc.pid), "rss_kb": rss_kb(p)} for p in pids]
        return {"total_kb": sum(p["rss_kb"] for p in procs), "procs": procs}


class FloorServer(Server):
    """The fixed floor (bench/floor_app.py): FastAPI + uvicorn with its defaults, one process, no I/O.
    It shares nothing with the service, so the ratios do not move when the service's stack does."""

    def __init__(self, log_path: Path):
        super().__init__({k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}, 1, False, log_path)
        self.name = "floor server"

    def command(self) -> list[str]:
        return [floor_python(), "-m", "uvicorn", "--app-dir", str(BENCH), "floor_app:app",
                "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]


def floor_python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable
