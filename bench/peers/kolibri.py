#!/usr/bin/env python3
"""viewer-service next to Kolibri: the same progress write and read, same machine, same run.

    .venv/bin/python bench/peers/kolibri.py            # ~6 minutes the first time (installs Kolibri)

1. Installs Kolibri (`pip install kolibri==VERSION`) into its own venv under the cache directory
   (~/.cache/viewer-bench/kolibri-VERSION), once; never into the project's venv.
2. Kolibri in a temp KOLIBRI_HOME (SQLite, its default): migrate, `provisiondevice` (a facility and
   a superuser), then `kolibri_provision.py` in Kolibri's Django shell: N learners, a channel whose
   topic has C video leaves, and the SQL statements of one write and one read, counted.
3. `kolibri start --foreground` on a free port; every learner logs in (`POST /api/auth/session/`)
   and starts a content session on every leaf (`POST /api/logger/trackprogress/`).
4. Rounds: Kolibri write and read (wrk, bench/peers/kolibri.lua), then `bench/run.py --phases
   floor,writes,reads --repeats 1` for viewer-service on PostgreSQL + Redis and on the embedded
   stack, with the same learners, contents, wrk threads, connections and duration.
5. Prints a table (medians over rounds) and writes it with the raw numbers to bench/results/.
Everything it started or created is removed at the end, also on Ctrl-C or failure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import http.cookiejar
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PEERS = Path(__file__).resolve().parent
sys.path.insert(0, str(PEERS.parent))

import peers_report as report  # noqa: E402  (bench/peers/peers_report.py)
import run as vbench  # noqa: E402  (bench/run.py: wrk driver, /proc helpers)
from harness import BenchError, Cleanup, _sigterm, free_port  # noqa: E402

ROOT = PEERS.parent.parent
KOLIBRI_VERSION = "0.19.5"
PASSWORD = "benchpass"
LABELS = {"kolibri": "Kolibri {v} (SQLite, its default)",
          "postgres": "viewer-service, PostgreSQL + Redis",
          "embedded": "viewer-service, embedded (SQLite)"}


def log(msg: str) -> None:
    print(f"peers: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- Kolibri install

def kolibri_venv(args) -> Path:
    venv = Path(args.cache_dir) / f"kolibri-{args.kolibri_version}"
    exe = venv / "bin" / "kolibri"
    if exe.exists():
        return venv
    log(f"installing kolibri=={args.kolibri_version} into {venv} (~100 MB download, 1-3 minutes)")
    tmp = venv.with_name(venv.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([args.kolibri_python, "-m", "venv", str(tmp)], check=True)
    # pip prints its own progress lines; a venv is not relocatable, so install in place after a rename.
    tmp.rename(venv)
    try:
        subprocess.run([str(venv / "bin" / "pip"), "install", "--progress-bar", "off",
                        f"kolibri=={args.kolibri_version}"], check=True)
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    return venv


# --------------------------------------------------------------------------- Kolibri server

class Kolibri:
    """One Kolibri home and server; the attributes bench/run.py's Wrk needs (url, proc, pids)."""

    def __init__(self, venv: Path, home: Path, log_path: Path):
        self.exe = str(venv / "bin" / "kolibri")
        self.home, self.log_path = home, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("KOLIBRI_", "VIEWER_"))}
        # No outside calls and no LAN announcements during the run; nothing on the request path.
        self.env.update(KOLIBRI_HOME=str(home), KOLIBRI_DISABLE_PING="true",
                        KOLIBRI_ZEROCONF_ENABLED="false", KOLIBRI_LISTEN_ADDRESS="127.0.0.1")

    def manage(self, *argv: str, extra_env: dict | None = None) -> None:
        with open(self.log_path, "ab") as f:
            f.write(f"\n$ kolibri manage {' '.join(argv)}\n".encode())
            f.flush()
            r = subprocess.run([self.exe, "manage", *argv], env={**self.env, **(extra_env or {})},
                               cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                               timeout=900)
        if r.returncode:
            raise BenchError(f"kolibri manage {argv[0]} exited {r.returncode}; log {self.log_path}:\n"
                             f"{vbench.tail(self.log_path)}")

    def provision(self, learners: int, contents: int) -> dict:
        out = self.home / "provision.json"
        self.manage("migrate")
        self.manage("provisiondevice", "--facility", "Bench", "--superusername", "admin",
                    "--superuserpassword", PASSWORD + "admin", "--preset", "nonformal",
                    "--language_id", "en", "--noinput")
        code = f"exec(open({str(PEERS / 'kolibri_provision.py')!r}).read())"
        self.manage("shell", "-c", code, extra_env={"PEERS_LEARNERS": str(learners),
                                                   "PEERS_CONTENTS": str(contents), "PEERS_OUT": str(out)})
        return json.loads(out.read_text())

    def start(self, timeout: float) -> float:
        zip_port = free_port()
        cmd = [self.exe, "start", "--foreground", "--port", str(self.port), "--zip-port", str(zip_port)]
        logf = open(self.log_path, "ab")
        logf.write(f"\n$ {' '.join(cmd)}\n".encode())
        logf.flush()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=str(ROOT), stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"kolibri exited with {self.proc.returncode}; log {self.log_path}:\n"
                                 f"{vbench.tail(self.log_path)}")
            try:
                with urllib.request.urlopen(self.url + "/api/public/info/", timeout=2) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"kolibri did not answer within {timeout:.0f} s; log {self.log_path}")
            time.sleep(0.3)

    def pids(self) -> list[int]:
        return vbench.process_tree(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def rss_kb(self) -> int:
        return sum(vbench.rss_kb(p) for p in self.pids())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group this script created
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


def open_sessions(k: Kolibri, prov: dict, learners: int, path: Path) -> None:
    """Log every learner in and start a content session per leaf; one line per learner in `path`:
    session cookie, CSRF token, session ids."""
    nodes = prov["nodes"]

    def one(i: int) -> str:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

        def cookie(name):
            return next((c.value for c in jar if c.name == name), None)

        def post(p, body):
            req = urllib.request.Request(k.url + p, data=json.dumps(body).encode(), method="POST", headers={
                "Content-Type": "application/json", "X-CSRFToken": cookie("kolibri_csrftoken") or ""})
            # (the login needs no token; its answer sets the session and CSRF cookies)
            with opener.open(req, timeout=30) as r:
                return json.loads(r.read())

        post("/api/auth/session/", {"username": f"bench_u{i}", "password": PASSWORD,
                                    "facility": prov["facility_id"]})
        sids = [post("/api/logger/trackprogress/", {
            "node_id": n["node_id"], "content_id": n["content_id"], "channel_id": prov["channel_id"],
            "kind": "video"})["session_id"] for n in nodes]
        return f"{cookie('kolibri')}\t{cookie('kolibri_csrftoken')}\t{','.join(sids)}"

    t0 = time.monotonic()
    lines = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        for n, line in enumerate(pool.map(one, range(learners)), 1):
            lines.append(line)
            if n % 50 == 0 or n == learners:
                log(f"kolibri: {n}/{learners} learners logged in, {len(nodes)} sessions each "
                    f"({time.monotonic() - t0:.0f} s)")
    path.write_text("\n".join(lines) + "\n")


def phase(r) -> dict:
    return {"rps": r.rps, "p50": r.lat_ms("p50"), "p99": r.lat_ms("p99"),
            "cpu_us": r.server_cpu_s / max(1, int(r.data["requests"])) * 1e6,
            "bad": r.non2xx + r.timeouts, "socket_errors": r.socket_errors, "wrk_cpu": r.wrk_cpu_s / r.wall_s,
            "server_cpu": r.server_cpu_s / r.wall_s, "machine_busy": r.machine_busy}


# --------------------------------------------------------------------------- viewer-service

def ours(args, rnd: int, outdir: Path) -> dict[str, dict]:
    """One round of bench/run.py (floor, writes, reads; 1 repeat) on each of our stacks."""
    out = outdir / f"viewer-r{rnd + 1}"
    cmd = [sys.executable, str(PEERS.parent / "run.py"), "--stacks", ",".join(args.ours),
           "--phases", "floor,writes,reads", "--repeats", "1", "--warmup", str(args.warmup),
           "-t", str(args.threads), "-c", str(args.connections), "-d", str(args.duration),
           "--learners", str(args.learners), "--contents", str(args.contents),
           "--seed", str(args.seed + rnd), "--out", str(out)]
    log(f"round {rnd + 1}: {' '.join(cmd[1:])}")
    proc = subprocess.run(cmd, cwd=str(ROOT), stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    found = sorted(out.glob("*.json"))
    if not found:
        raise BenchError(f"bench/run.py wrote no report (exit {proc.returncode}); see {out}")
    data = json.loads(found[-1].read_text())
    res = {}
    for cfg in data["configs"]:
        s = cfg["summary"]
        if cfg.get("error") or "writes" not in s or "reads" not in s:
            raise BenchError(f"bench/run.py {cfg['stack']}: {cfg.get('error') or 'no result'}")

        def ph(p):
            return {"rps": p["rps"], "p50": p["p50"], "p99": p["p99"], "cpu_us": p["cpu_us_per_req"],
                    "bad": p["non2xx"] + p["timeouts"], "socket_errors": p["socket_errors"], "wrk_cpu": p["wrk_cpu"],
                    "server_cpu": p["server_cpu"], "machine_busy": p["machine_busy"]}

        res[cfg["stack"]] = {"write": ph(s["writes"]), "read": ph(s["reads"]), "floor_rps": s["floor"]["rps"],
                             "rss_kb": max(m["total_kb"] for m in cfg["memory"])}
        log(f"round {rnd + 1}: {cfg['stack']}: write {s['writes']['rps']:,.0f} req/s, "
            f"read {s['reads']['rps']:,.0f} req/s, floor {s['floor']['rps']:,.0f} req/s")
    return res


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kolibri-version", default=KOLIBRI_VERSION)
    p.add_argument("--kolibri-python", default=shutil.which("python3.11") or sys.executable,
                   help="interpreter for Kolibri's venv (Kolibri 0.19 supports 3.6-3.14)")
    p.add_argument("--cache-dir", default=os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "viewer-bench"))
    p.add_argument("--ours", default="postgres,embedded", help="viewer-service stacks to compare (bench/run.py)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of every system, one after the other")
    p.add_argument("-t", "--threads", type=int, default=1)
    p.add_argument("-c", "--connections", type=int, default=64)
    p.add_argument("-d", "--duration", type=int, default=5, help="seconds per measured phase")
    p.add_argument("--warmup", type=int, default=1, help="seconds of each phase before measuring")
    p.add_argument("--learners", type=int, default=100, help="learners, each logged in to Kolibri")
    p.add_argument("--contents", type=int, default=5, help="contents of the collection / topic")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=str(PEERS.parent / "results"))
    p.add_argument("--lock", help="a file to flock(2) while measuring (e.g. a machine's shared bench lock); "
                   "taken after Kolibri is provisioned, before it starts and its learners log in")
    a = p.parse_args(argv)
    a.ours = [s for s in a.ours.split(",") if s]
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    wrk_exe = shutil.which("wrk")
    if not wrk_exe:
        log("wrk not found: apt-get install wrk")
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    started = dt.datetime.now().astimezone()
    outdir = Path(args.out) / f"peers-{started:%Y%m%d-%H%M%S}"
    outdir.mkdir(parents=True, exist_ok=True)
    cleanup = Cleanup()
    rounds: dict[str, list[dict]] = {"kolibri": [], **{s: [] for s in args.ours}}
    meta: dict = {"started": started.isoformat(), "args": vars(args), "machine": vbench.machine_info()}
    try:
        venv = kolibri_venv(args)
        home = Path(tempfile.mkdtemp(prefix="peers-kolibri-"))
        cleanup.push(f"kolibri home {home}", lambda: shutil.rmtree(home, ignore_errors=True))
        k = Kolibri(venv, home, outdir / "kolibri.log")
        t0 = time.monotonic()
        prov = k.provision(args.learners, args.contents)
        log(f"kolibri: provisioned in {time.monotonic() - t0:.0f} s; SQL per write "
            f"{prov['sql_per_write']['by_database']}, per read {prov['sql_per_read']['by_database']}")
        meta["kolibri_sql"] = {"write": prov["sql_per_write"], "read": prov["sql_per_read"]}
        if args.lock:  # measurements only: installing and provisioning run outside it
            lock = open(args.lock, "a")
            cleanup.push(f"lock {args.lock}", lock.close)
            log(f"waiting for {args.lock}")
            t0 = time.monotonic()
            fcntl.flock(lock, fcntl.LOCK_EX)
            log(f"got {args.lock} after {time.monotonic() - t0:.0f} s")
        cleanup.push("kolibri server", k.stop)
        meta["idle_cores_busy"] = vbench.machine_busy_sample()
        log(f"kolibri: up on {k.url} in {k.start(180):.1f} s (machine busy before: "
            f"{meta['idle_cores_busy']:.2f} cores)")
        creds = home / "sessions.tsv"
        open_sessions(k, prov, args.learners, creds)
        meta["kolibri_rss_kb_idle"] = k.rss_kb()
        wrk = vbench.Wrk(wrk_exe, args.threads, args.connections, 5, False, outdir / "kolibri.wrk.log", cleanup)

        def kolibri_phase(mode: str, seconds: int, seed: int):
            return wrk.run("peers/kolibri", k, seconds, [f"mode={mode}", f"creds={creds}",
                                                         f"topic={prov['topic_id']}", f"seed={seed}"])

        if args.warmup:
            for mode in ("write", "read"):
                kolibri_phase(mode, args.warmup, args.seed + 999)
        for rnd in range(args.rounds):
            row = {}
            for mode in ("write", "read"):
                if not k.alive():
                    raise BenchError(f"kolibri died; log {k.log_path}")
                r = kolibri_phase(mode, args.duration, args.seed * 100 + rnd)
                row[mode] = phase(r)
                row["rss_kb"] = max(row.get("rss_kb", 0), k.rss_kb())
                log(f"round {rnd + 1}: kolibri {mode}: {r.rps:,.0f} req/s, p50 {r.lat_ms('p50'):.1f} ms, "
                    f"p99 {r.lat_ms('p99'):.1f} ms, server CPU {r.server_cpu_s / r.wall_s:.2f}, "
                    f"non-2xx {r.non2xx}, timeouts {r.timeouts}, socket errors {r.socket_errors}")
            theirs = ours(args, rnd, outdir) if args.ours else {}
            ref = theirs.get("postgres") or next(iter(theirs.values()), {})
            row["floor_rps"] = ref.get("floor_rps")
            rounds["kolibri"].append(row)
            for s, v in theirs.items():
                rounds[s].append(v)
    except (BenchError, subprocess.CalledProcessError) as e:
        log(f"FAILED: {e}")
        meta["error"] = str(e)
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        meta["error"] = "interrupted"
    finally:
        cleanup.run()
    labels = {**LABELS, "kolibri": LABELS["kolibri"].format(v=args.kolibri_version)}
    summary = report.summarize({s: rs for s, rs in rounds.items() if rs})
    text = "\n".join([
        f"# Peers: viewer-service and Kolibri, {started:%Y-%m-%d %H:%M %Z}", "",
        f"`wrk -t{args.threads} -c{args.connections} -d{args.duration}s`, {args.rounds} round(s) "
        f"(Kolibri write, read; then bench/run.py floor, writes, reads per stack), medians; "
        f"{args.learners} learners x {args.contents} contents.", "",
        report.table(summary, labels), "", report.floor_line(summary, labels), ""])
    (outdir / "report.md").write_text(text)
    (outdir / "report.json").write_text(json.dumps({**meta, "rounds": rounds, "summary": summary},
                                                   indent=1, default=str))
    print(text)
    log(f"report {outdir / 'report.md'}, raw {outdir / 'report.json'}")
    bad = any(s[ph]["bad"] for s in summary.values() for ph in report.PHASES)
    return 1 if meta.get("error") or bad or not rounds["kolibri"] else 0


if __name__ == "__main__":
    sys.exit(main())
