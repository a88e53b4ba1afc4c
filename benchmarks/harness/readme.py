"""The README's performance section, made from one run's JSON (`run.py --json`).

Rules:
1. One source: the section between BEGIN and END in README.md is exactly `render(run)`
   of the file kept in benchmarks/results/, so a figure is never typed by hand
   (tests/unit/test_benchmark_tables.py checks it; `python benchmarks/tables.py` writes it).
2. Every figure is a median over the run's kept rounds, and every ratio the gateway's
   req/s over the peer's taken within each round, as harness/summary.py computes them;
   nothing here recomputes either.
3. The header says when, where and what: the date, the machine, the versions, the commit
   and the form of the gateway that ran (compiled or pure).
4. The targets are issue 18's, each marked met or missed from the same ratios.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BEGIN = "<!-- benchmarks/tables.py: begin -->"
END = "<!-- benchmarks/tables.py: end -->"

NONE = "\N{EN DASH}"  # nothing measured
TIMES = "\N{MULTIPLICATION SIGN}"

Summary = Mapping[str, Mapping[str, Mapping[str, Any]]]  # case -> server -> row

# (label, case) for the one-app cases over HTTP/1.1.
SINGLE_APP = (
    ("ASGI hello", "asgi-hello"),
    ("ASGI 64 KiB", "asgi-64k"),
    ("ASGI 16 KiB echo", "asgi-echo"),
    ("FastAPI JSON", "fastapi-json"),
    ("WSGI hello", "wsgi-hello"),
    ("WSGI 64 KiB", "wsgi-64k"),
    ("WSGI 16 KiB echo", "wsgi-echo"),
    ("Flask JSON", "flask-json"),
)
# (heading, server); None is granian with the case's own interface.
SINGLE_APP_PEERS: tuple[tuple[str, str | None], ...] = (
    ("uvicorn (httptools)", "uvicorn-httptools"),
    ("granian", None),
    ("gunicorn gthread", "gunicorn-gthread"),
    ("gunicorn ASGI worker", "gunicorn-asgi"),
    ("uvicorn + a2wsgi", "uvicorn-a2wsgi"),
)
MIXED_SIDES = ("wsgi", "asgi")
MIXED_BODIES = (("hello", "hello"), ("json", "small JSON"), ("64k", "64 KiB"))
# uvicorn's row for a case: alone, with a WSGI app through a2wsgi, or the mixed site.
UVICORN_ROWS = ("uvicorn-httptools", "uvicorn-a2wsgi", "uvicorn-starlette")
HTTP2 = (("ASGI hello", "h2-asgi-hello"), ("FastAPI JSON", "h2-fastapi-json"))


@dataclass(frozen=True)
class Target:
    label: str
    case: str
    peer: str
    at_least: float


TARGETS = (
    Target(f"ASGI hello ≥ 1.0{TIMES} granian", "asgi-hello", "granian-asgi", 1.0),
    Target(f"FastAPI JSON ≥ 1.0{TIMES} granian", "fastapi-json", "granian-asgi", 1.0),
    Target(f"WSGI hello ≥ 0.5{TIMES} granian", "wsgi-hello", "granian-wsgi", 0.5),
    Target(f"WSGI hello ≥ 3.5{TIMES} gunicorn gthread", "wsgi-hello", "gunicorn-gthread", 3.5),
    Target(f"Flask JSON ≥ 1.0{TIMES} granian", "flask-json", "granian-wsgi", 1.0),
    *(
        Target(
            f"mixed site, {side.upper()} side, {label}:"
            f" ≥ {floor:g}{TIMES} granian + Starlette + a2wsgi",
            f"mixed-{side}-{body}",
            "granian-starlette",
            floor,
        )
        for side, floor in (("wsgi", 5.0), ("asgi", 1.5))
        for body, label in MIXED_BODIES
    ),
)


def by_server(run: Mapping[str, Any]) -> Summary:
    """The run's summary as case -> server -> row."""
    return {case: {row["server"]: row for row in rows} for case, rows in run["summary"].items()}


def _rate(rps: float | None) -> str:
    if rps is None:
        return NONE
    return f"{rps / 1000:.1f}k" if rps >= 1000 else f"{rps:.0f}"


def _row(summary: Summary, case: str, server: str) -> Mapping[str, Any] | None:
    row = summary.get(case, {}).get(server)
    return row if row is not None and row["rps"] is not None else None


def ratio(summary: Summary, case: str, server: str, gateway: str = "gateway") -> float | None:
    """The median within-round ratio of `gateway` to `server` (rule "every figure")."""
    row = _row(summary, case, server)
    value = None if row is None else row["ratios"].get(gateway)
    return None if value is None else float(value)


def _cell(summary: Summary, case: str, server: str, gateway: str = "gateway") -> str:
    row = _row(summary, case, server)
    if row is None:
        return NONE
    share = ratio(summary, case, server, gateway)
    return _rate(row["rps"]) if share is None else f"{_rate(row['rps'])} ({share:.2f})"


def _gateway(summary: Summary, case: str, server: str = "gateway") -> str:
    row = _row(summary, case, server)
    return NONE if row is None else _rate(row["rps"])


def header(run: Mapping[str, Any]) -> str:
    """When, where and what ran (rule "the header says")."""
    machine, args = run["machine"], run["args"]
    versions = ", ".join(
        f"{name} {version}" for name, version in machine["versions"].items() if version != "-"
    )
    return (
        f"Measured on {machine['date']} (UTC) on {machine['cores']} cores"
        f" ({machine['cpu']}), Linux {machine['kernel']}, Python {machine['python']},"
        f" {machine['wrk']}, {machine['h2load']}; {versions}. The gateway at"
        f" {machine['gateway_source']}, {machine['gateway_form']}. One run of"
        f" {args['rounds']} rounds of {args['duration']:g} s per server and case, one worker"
        f" each, server and load generator pinned to their own cores, {args['connections']}"
        " connections; req/s is the median of the rounds, and (in brackets) the gateway's"
        " req/s over that peer's, taken within each round."
    )


def single_app_table(summary: Summary) -> list[str]:
    headings = " | ".join(heading for heading, _ in SINGLE_APP_PEERS)
    lines = [f"| case | gateway | {headings} |", "|---|--:|" + "--:|" * len(SINGLE_APP_PEERS)]
    for label, case in SINGLE_APP:
        wsgi = case.startswith(("wsgi", "flask"))
        cells = [
            _cell(summary, case, server or ("granian-wsgi" if wsgi else "granian-asgi"))
            for _, server in SINGLE_APP_PEERS
        ]
        lines.append(f"| {label} | {_gateway(summary, case)} | {' | '.join(cells)} |")
    h11 = _cell(summary, "asgi-hello", "uvicorn-h11", "gateway-h11")
    lines.append(
        f'| ASGI hello, `http = "h11"` | {_gateway(summary, "asgi-hello", "gateway-h11")}'
        f" | uvicorn (h11): {h11} | {NONE} | {NONE} | {NONE} | {NONE} |"
    )
    return lines


def mixed_site_table(summary: Summary) -> list[str]:
    lines = [
        "| mixed site: request | gateway | granian + Starlette + a2wsgi"
        " | uvicorn + Starlette + a2wsgi |",
        "|---|--:|--:|--:|",
    ]
    for side in MIXED_SIDES:
        for body, label in MIXED_BODIES:
            case = f"mixed-{side}-{body}"
            lines.append(
                f"| {side.upper()} side, {label} | {_gateway(summary, case)}"
                f" | {_cell(summary, case, 'granian-starlette')}"
                f" | {_cell(summary, case, 'uvicorn-starlette')} |"
            )
    return lines


def http2_table(summary: Summary) -> list[str]:
    lines = ["| HTTP/2 (h2load) | gateway | granian | hypercorn |", "|---|--:|--:|--:|"]
    for label, case in HTTP2:
        lines.append(
            f"| {label} | {_gateway(summary, case)} | {_cell(summary, case, 'granian-asgi')}"
            f" | {_cell(summary, case, 'hypercorn')} |"
        )
    return lines


def targets_table(summary: Summary) -> list[str]:
    lines = ["| target (issue 18) | measured | |", "|---|--:|---|"]
    for target in TARGETS:
        value = ratio(summary, target.case, target.peer)
        shown = NONE if value is None else f"{value:.2f}{TIMES}"
        verdict = "met" if value is not None and value >= target.at_least else "missed"
        lines.append(f"| {target.label} | {shown} | {verdict} |")
    return lines


def latency_memory_table(summary: Summary) -> list[str]:
    """p99 and RSS against uvicorn's, on every case uvicorn serves (the mixed site's
    through Starlette, a WSGI app's through a2wsgi)."""
    lines = [
        "| case | gateway p99 ms | uvicorn p99 ms | gateway RSS MiB | uvicorn RSS MiB |",
        "|---|--:|--:|--:|--:|",
    ]
    for case in summary:
        gateway = _row(summary, case, "gateway")
        uvicorn_rows = (_row(summary, case, name) for name in UVICORN_ROWS)
        uvicorn = next((row for row in uvicorn_rows if row is not None), None)
        if gateway is None or uvicorn is None:
            continue
        lines.append(
            f"| {case} ({uvicorn['server']}) | {gateway['p99_ms']:.2f} | {uvicorn['p99_ms']:.2f}"
            f" | {gateway['rss_mib']:.1f} | {uvicorn['rss_mib']:.1f} |"
        )
    return lines


def render(run: Mapping[str, Any]) -> str:
    """The whole section, markers included (rule "one source")."""
    summary = by_server(run)
    blocks = [
        [header(run)],
        single_app_table(summary),
        mixed_site_table(summary),
        http2_table(summary),
        targets_table(summary),
        latency_memory_table(summary),
    ]
    body = "\n\n".join("\n".join(block) for block in blocks)
    return f"{BEGIN}\n{body}\n{END}"


def replace_section(text: str, section: str) -> str:
    """`text` with its section between the markers replaced by `section`."""
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + section + text[end:]


def current_section(text: str) -> str:
    """The section between the markers, markers included, as `text` has it."""
    return text[text.index(BEGIN) : text.index(END) + len(END)]
