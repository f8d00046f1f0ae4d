"""The peers comparison's numbers and tables (pure: no I/O, no servers).

A *round* is one measurement of every system, one after the other, in one sitting. Per system and
round: {"write": phase, "read": phase, "rss_kb": int, "floor_rps": float}; a phase is
{"rps", "p50", "p99" (ms), "cpu_us" (server CPU per request), "bad" (non-2xx + timeouts)}.
`floor_rps` is viewer-service's no-I/O floor route measured in the same round (the machine's
HTTP ceiling at that moment, to see how loaded it was).
"""

from __future__ import annotations

import statistics

PHASES = ("write", "read")
BASE = "kolibri"


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(rounds: dict[str, list[dict]]) -> dict[str, dict]:
    """Per system: medians over rounds of every figure, every round's req/s, and per-round
    ratios to Kolibri (same round) and to the floor, as medians."""
    out = {}
    for system, rs in rounds.items():
        s = {"rounds": len(rs), "rss_mib": _med([r.get("rss_kb") for r in rs])}
        if s["rss_mib"] is not None:
            s["rss_mib"] /= 1024
        for ph in PHASES:
            runs = [r[ph] for r in rs if r.get(ph)]
            s[ph] = {k: _med([x.get(k) for x in runs]) for k in ("rps", "p50", "p99", "cpu_us")}
            s[ph]["rps_all"] = [x["rps"] for x in runs]
            s[ph]["bad"] = sum(x.get("bad", 0) for x in runs)
            s[ph]["x_floor"] = _med([r[ph]["rps"] / r["floor_rps"] for r in rs
                                     if r.get(ph) and r.get("floor_rps")])
            base = rounds.get(BASE, [])
            s[ph]["x_kolibri"] = _med([r[ph]["rps"] / b[ph]["rps"] for r, b in zip(rs, base)
                                       if r.get(ph) and b.get(ph) and b[ph]["rps"]])
        out[system] = s
    return out


def _f(x, nd=0, suffix=""):
    return "n/a" if x is None else f"{x:,.{nd}f}{suffix}"


def table(summary: dict[str, dict], labels: dict[str, str]) -> str:
    """Markdown: one row per system, write and read side by side, then memory."""
    head = ("| system | write req/s | × Kolibri | p50 ms | p99 ms | CPU µs/write | read req/s | × Kolibri "
            "| p50 ms | p99 ms | CPU µs/read | RSS MiB |")
    lines = [head, "|---|" + "---:|" * 11]
    for system, s in summary.items():
        cells = [labels.get(system, system)]
        for ph in PHASES:
            p = s[ph]
            rps = _f(p["rps"]) + (f" ({p['bad']} non-2xx)" if p["bad"] else "")
            cells += [rps, _f(p["x_kolibri"], 1, "×"), _f(p["p50"], 1), _f(p["p99"], 1), _f(p["cpu_us"])]
        cells.append(_f(s["rss_mib"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def floor_line(summary: dict[str, dict], labels: dict[str, str]) -> str:
    """Each system's req/s as a share of the same round's floor, and every round's req/s."""
    parts = []
    for system, s in summary.items():
        w, r = s["write"], s["read"]
        parts.append(f"- {labels.get(system, system)}: write {_f(w['x_floor'], 2)}× floor "
                     f"(rounds: {', '.join(_f(x) for x in w['rps_all'])} req/s), read "
                     f"{_f(r['x_floor'], 2)}× floor (rounds: {', '.join(_f(x) for x in r['rps_all'])} req/s)")
    return "\n".join(parts)
