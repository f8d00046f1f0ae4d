"""The README's "Try it" section, run as a newcomer runs it: every example answers as the text
says, the course completes and its event appears, and everything the service leaves in the
checkout is git-ignored."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
from pathlib import Path

from helpers import clean_env, wait_answering
from servers import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).with_name("viewer-service")


def try_it_commands(port: int) -> list[str]:
    """The shell commands of "Try it", continuation lines joined, aimed at `port`."""
    section = (ROOT / "README.md").read_text().split("## Try it", 1)[1].split("\n## ", 1)[0]
    commands, current = [], ""
    for line in section.splitlines():
        if not line.startswith("    ") or not (current or line.strip().startswith(("curl", "url=", "cat", "sleep"))):
            continue
        current += line[4:].rstrip("\\") + (" " if line.endswith("\\") else "")
        if not line.endswith("\\"):
            commands.append(current.replace("localhost:8080", f"localhost:{port}"))
            current = ""
    return commands


def ignored(name: str) -> bool:
    """Whether .gitignore ignores a file or directory that the service makes at the top level."""
    patterns = [p.strip() for p in (ROOT / ".gitignore").read_text().splitlines() if p.strip() and not p.startswith("#")]
    return any(fnmatch.fnmatch(name, p.strip("/")) for p in patterns)


async def test_the_readme_examples_work_as_written(tmp_path):
    port = free_port()
    proc = subprocess.Popen([BIN, "serve", "--port", str(port)], cwd=tmp_path, env=clean_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_answering(f"http://127.0.0.1:{port}/health", proc)
        commands = try_it_commands(port)
        assert len(commands) >= 15
        mark = "@@ next command @@"
        script = "set -e\n" + "".join(f"{cmd}\necho '{mark}'\n" for cmd in commands)  # one shell: $url carries
        out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        outputs = out.stdout.split(mark + "\n")[:-1]
        assert len(outputs) == len(commands)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    answers = []
    for cmd, text in zip(commands, outputs):
        if cmd.startswith(("curl", "sleep")) and "-w '\\n'" in cmd:
            body = json.loads(text.strip())
            answers.append(body)
            assert body["params"]["status"] == "success", (cmd, body)
        elif "HTTP %{http_code}" in cmd:
            assert text.strip().endswith("HTTP 400") and "request.progress" in text, text
    assert len(answers) >= 12
    # The course completed: the summary says so, and the events file holds its completion.
    listed = next(a for a in answers if a["id"] == "api.summary.list")["result"]["summary"]
    assert [s["status"] for s in listed if s["contextId"] == "batch_1"] == [2]
    events = [json.loads(line) for line in (tmp_path / "viewer-events.jsonl").read_text().splitlines()]
    assert events and all(e["edata"] for e in events)
    # The CSV download's second step fetched the file itself.
    csv = next(t for c, t in zip(commands, outputs) if c.startswith('curl -s "localhost'))
    assert csv.startswith("userId,collectionId,contextId") and "course_1" in csv
    # The carried read says where do_1 came from.
    carried = [a for a in answers if a["id"] == "api.view.read" and a["result"]["contextId"] == "program_1"]
    assert carried[-1]["result"]["contents"][0]["provenance"]["from"]["contextId"] == "batch_1"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert {"viewer.db", "viewer-events.jsonl", "viewer-downloads"} <= set(left)
    assert [name for name in left if not ignored(name)] == []
