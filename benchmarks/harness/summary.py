"""Results: one record per measured run, and the per-case tables made from them.

A table row is the median over the rounds kept for that server. The ratio of a gateway
variant G to a row is computed within each round (G's req/s / the row's req/s, both from
that round) and the median of those ratios is reported: a round where the whole machine
was slower moves both sides, not the ratio.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from harness.cases import Case, Server


@dataclass
class Run:
    """One (round, case, server) measurement; `failed` if there was nothing to measure."""

    round: int
    case: str
    server: str
    attempt: int
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mib: float | None = None
    requests: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    wrk_wait: float | None = None
    others_cpu: float | None = None
    server_wait: float | None = None
    starved: bool = False
    failed: str = ""

    @property
    def kept(self) -> bool:
        return not self.starved and not self.failed and self.rps is not None

    @property
    def flagged(self) -> bool:
        return self.non_2xx > 0 or self.socket_errors > 0


@dataclass
class Row:
    server: str
    role: str
    rps: float | None
    p50_ms: float | None
    p99_ms: float | None
    rss_mib: float | None
    kept: int
    rounds: int
    flagged: int  # kept rounds with non-2xx answers or socket errors
    starved: int  # dropped runs (retries included)
    failed: int
    ratios: dict[str, float | None] = field(default_factory=dict)  # gateway variant -> G/row


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _kept(runs: list[Run], case: str, server: str) -> dict[int, Run]:
    return {r.round: r for r in runs if r.case == case and r.server == server and r.kept}


def _ratio(gateway: dict[int, Run], other: dict[int, Run]) -> float | None:
    """Median over the rounds both kept of gateway req/s / other req/s."""
    ratios: list[float | None] = []
    for n in sorted(gateway.keys() & other.keys()):
        mine, theirs = gateway[n].rps, other[n].rps
        if mine and theirs:
            ratios.append(mine / theirs)
    return _median(ratios)


def summarize(runs: list[Run], case: Case, servers: list[Server], rounds: int) -> list[Row]:
    gateways = [s.name for s in servers if s.role == "gateway"]
    rows = []
    for server in servers:
        kept = _kept(runs, case.name, server.name)
        mine = [r for r in runs if r.case == case.name and r.server == server.name]
        row = Row(
            server.name, server.role,
            rps=_median([r.rps for r in kept.values()]),
            p50_ms=_median([r.p50_ms for r in kept.values()]),
            p99_ms=_median([r.p99_ms for r in kept.values()]),
            rss_mib=_median([r.rss_mib for r in kept.values()]),
            kept=len(kept), rounds=rounds,
            flagged=sum(r.flagged for r in kept.values()),
            starved=sum(r.starved for r in mine),
            failed=sum(bool(r.failed) for r in mine),
        )  # fmt: skip
        for gateway in gateways:
            if gateway != server.name:
                row.ratios[gateway] = _ratio(_kept(runs, case.name, gateway), kept)
        rows.append(row)
    return rows


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _notes(row: Row) -> str:
    notes = []
    if row.flagged:
        notes.append(f"errors in {row.flagged} round(s)")
    if row.starved:
        notes.append(f"{row.starved} starved run(s) dropped")
    if row.failed:
        notes.append(f"failed {row.failed}x")
    return "; ".join(notes)


def table(rows: list[Row]) -> list[list[str]]:
    """Header and cells: server, req/s, p50, p99, RSS, one ratio per gateway variant."""
    gateways = [r.server for r in rows if r.role == "gateway"]
    head = ["server", "req/s", "p50 ms", "p99 ms", "RSS MiB"]
    lines = [[*head, *[f"{g}/row" for g in gateways], "rounds", "notes"]]
    for row in rows:
        ratios = [_num(row.ratios.get(g), ".2f") if g != row.server else "1" for g in gateways]
        lines.append([
            row.server, _num(row.rps, ",.0f"), _num(row.p50_ms, ".2f"),
            _num(row.p99_ms, ".2f"), _num(row.rss_mib, ".1f"), *ratios,
            f"{row.kept}/{row.rounds}", _notes(row),
        ])  # fmt: skip
    return lines


def plain_table(lines: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = []
    for line in lines:
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def markdown_table(lines: list[list[str]]) -> str:
    rule = "|" + "|".join(["---"] + ["--:"] * (len(lines[0]) - 2) + ["---"]) + "|"
    out = ["| " + " | ".join(lines[0]) + " |", rule]
    out += ["| " + " | ".join(line) + " |" for line in lines[1:]]
    return "\n".join(out)


def report(summary: dict[str, list[Row]], cases: list[Case], markdown: bool) -> str:
    parts = []
    for case in cases:
        lines = table(summary[case.name])
        if markdown:
            parts.append(f"#### `{case.name}`: {case.about}\n\n{markdown_table(lines)}\n")
        else:
            parts.append(f"== {case.name}: {case.about}\n{plain_table(lines)}\n")
    return "\n".join(parts)
