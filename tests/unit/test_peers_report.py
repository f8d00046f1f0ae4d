"""bench/peers/peers_report.py: the comparison table's arithmetic (pure; no Kolibri, no network)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "peers"))

import peers_report as report  # noqa: E402


def phase(rps, p50=1.0, p99=2.0, cpu_us=100.0, bad=0):
    return {"rps": rps, "p50": p50, "p99": p99, "cpu_us": cpu_us, "bad": bad}


ROUNDS = {
    "kolibri": [
        {"write": phase(100, p99=50), "read": phase(400), "rss_kb": 200 * 1024, "floor_rps": 10_000},
        {"write": phase(50, p99=70), "read": phase(500), "rss_kb": 210 * 1024, "floor_rps": 5_000},
    ],
    "postgres": [
        {"write": phase(6_000), "read": phase(8_000), "rss_kb": 100 * 1024, "floor_rps": 10_000},
        {"write": phase(4_000, bad=3), "read": phase(4_000), "rss_kb": 120 * 1024, "floor_rps": 5_000},
    ],
}


def test_ratios_are_taken_per_round_then_the_median():
    s = report.summarize(ROUNDS)
    # Round 1: 6000/100 = 60, round 2: 4000/50 = 80 -> 70; not median(rps) / median(rps) = 5000/75.
    assert s["postgres"]["write"]["x_kolibri"] == 70
    assert s["postgres"]["read"]["x_kolibri"] == (8_000 / 400 + 4_000 / 500) / 2
    assert s["kolibri"]["write"]["x_kolibri"] == 1
    assert s["kolibri"]["write"]["x_floor"] == (100 / 10_000 + 50 / 5_000) / 2
    assert s["kolibri"]["write"]["p99"] == 60
    assert s["kolibri"]["rss_mib"] == 205
    assert s["postgres"]["write"]["rps_all"] == [6_000, 4_000]
    assert s["postgres"]["write"]["bad"] == 3


def test_the_table_has_a_row_per_system_and_shows_failed_answers():
    s = report.summarize(ROUNDS)
    text = report.table(s, {"kolibri": "Kolibri", "postgres": "ours"})
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| Kolibri | 75 | 1.0× |")
    assert lines[3].startswith("| ours | 5,000 (3 non-2xx) | 70.0× |")
    assert lines[3].endswith("| 110 |")
    assert "write 0.01× floor (rounds: 100, 50 req/s)" in report.floor_line(s, {"kolibri": "Kolibri"})


def test_a_system_without_kolibri_rounds_has_no_ratio():
    s = report.summarize({"postgres": ROUNDS["postgres"]})
    assert s["postgres"]["write"]["x_kolibri"] is None
    assert "| n/a |" in report.table(s, {})
