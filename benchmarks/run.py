"""Measure the gateway and its peers side by side, interleaved, and print ratios.

    python benchmarks/run.py --rounds 3 --duration 8 --markdown out.md --json out.json

Rules (DESIGN §7: a figure without its peer from the same run is not a result):
1. Interleaved: for each round, for each case, for each server. Every server meets the
   same machine in every round; the ratio gateway/peer is computed WITHIN a round, and
   the median of those ratios is reported.
2. One worker per server; the server pinned to core 0 and the load generator (one
   thread) to core 1 (`taskset -c`), both on 127.0.0.1: wrk for HTTP/1.1, h2load for
   the HTTP/2 cases (harness/h2load.py). The gateway gets a listening socket from the runner
   (--bind fd://N); a peer gets a port the runner found free.
3. Before measuring, one request checks that the server answers this case correctly (a
   fast 404 is not a result), then the load generator warms it up, then the measured
   run (h2load does both in one process, on the same connections).
4. A run during which something else took CPU is starved and dropped (harness/cpu.py),
   then retried once in the same round (--retries). A run with non-2xx answers or
   socket errors is kept and flagged; an HTTP/2 run with a failed request fails.
5. The gateway measured is a copy of its packages (gateway/, adapters/) taken when the
   runner starts, so edits made meanwhile do not mix two versions into one table.
6. Every server started is stopped, also on Ctrl-C and errors; every wait has a deadline
   and every loop a bound.
7. Standard library only, plus the servers and the tools it runs (wrk, h2load, curl).
   No result here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import TypeVar

from harness.cases import CASES, HOST, Case, ConfigFiles, Server, all_servers
from harness.cpu import Starvation, snapshot, starvation
from harness.h2load import h2load_argv, parse_h2load
from harness.load import GRACE_S, LoadResult
from harness.procs import Running, process_tree, rss_mib, started, unpinned, wait_ready
from harness.summary import Row, Run, report, summarize
from harness.wrk import parse_wrk, run_wrk, wrk_argv

SAMPLE_MARGIN_S = 0.5  # the CPU accounting window starts and ends this far inside the run
Named = TypeVar("Named", Case, Server)


@dataclass
class Settings:
    duration: float
    warmup: float
    connections: int
    streams: int  # per HTTP/2 connection
    retries: int
    logdir: Path


@dataclass
class Measured:
    load: LoadResult
    starvation: Starvation
    rss_mib: float


@dataclass
class Load:
    """One measured run of a load generator: its command, how long it runs before its
    measured part (h2load's own warm-up), and how its output is read."""

    argv: list[str]
    duration: float
    lead_in: float
    parse: Callable[[str], LoadResult]


def measure(running: Running, load: Load) -> Measured:
    """Run the load; account CPU just inside its measured part; sample the server's RSS
    near its end."""
    tool = subprocess.Popen(load.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(load.lead_in + SAMPLE_MARGIN_S)
        before = snapshot()
        time.sleep(max(0.5, load.duration - 2 * SAMPLE_MARGIN_S))
        after = snapshot()
        tree = process_tree(running.process.pid)
        rss, wrong = rss_mib(tree), unpinned(tree)
        out, err = tool.communicate(timeout=load.duration + GRACE_S)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait(5)
    name = Path(load.argv[3]).name  # after `taskset -c N`
    if tool.returncode != 0:
        raise RuntimeError(f"{name} exited {tool.returncode}: {err.decode()[-300:]}")
    if wrong:
        raise RuntimeError(f"server threads not pinned to core 0: {', '.join(wrong[:5])}")
    cpu = starvation(before, after, tree, tool.pid)
    return Measured(load.parse(out.decode()), cpu, rss)


def wrk_load(url: str, case: Case, cfg: Settings) -> Load:
    """A wrk warm-up run to its end, then the measured run to start."""
    run_wrk(wrk_argv(url, case, cfg.warmup, cfg.connections), cfg.warmup)
    argv = wrk_argv(url, case, cfg.duration, cfg.connections)
    return Load(argv, cfg.duration, 0.0, parse_wrk)


def h2load_load(url: str, case: Case, server: Server, cfg: Settings) -> Load:
    """h2load's warm-up and measured run, in one process (harness/h2load.py, rule "one
    h2load process per run")."""
    log = cfg.logdir / f"{case.name}-{server.name}.h2load.tsv"
    argv = h2load_argv(url, cfg.duration, cfg.warmup, cfg.connections, cfg.streams, log)

    def parse(text: str) -> LoadResult:
        try:
            return parse_h2load(text, log.read_text())
        finally:
            log.unlink(missing_ok=True)  # up to a few hundred thousand lines

    return Load(argv, cfg.duration, cfg.warmup, parse)


def run_one(server: Server, case: Case, number: int, attempt: int, cfg: Settings) -> Run:
    """Start, check, warm up, measure and stop one server for one case."""
    run = Run(number, case.name, server.name, attempt)
    path = server.path(case)
    try:
        with started(server, case, cfg.logdir) as running:
            wait_ready(running, path, case)
            url = f"http://{HOST}:{running.port}{path}"
            http2 = case.http2
            load = h2load_load(url, case, server, cfg) if http2 else wrk_load(url, case, cfg)
            result = measure(running, load)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        run.failed = str(exc).strip().replace("\n", " | ")[:400]
        return run
    done, cpu = result.load, result.starvation
    return replace(
        run, rps=done.rps, p50_ms=done.p50_ms, p99_ms=done.p99_ms, requests=done.requests,
        non_2xx=done.non_2xx, socket_errors=done.socket_errors, rss_mib=result.rss_mib,
        wrk_wait=cpu.wrk_wait, others_cpu=cpu.others_cpu, server_wait=cpu.server_wait,
        starved=cpu.starved,
    )  # fmt: skip


def describe(run: Run) -> str:
    if run.failed:
        return f"FAILED: {run.failed}"
    text = (
        f"{run.rps:>9,.0f} req/s  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:7.2f} ms"
        f"  RSS {run.rss_mib:5.1f} MiB"
    )
    if run.flagged:
        text += f"  ERRORS: non-2xx {run.non_2xx}, socket {run.socket_errors}"
    if run.starved:
        text += (
            f"  STARVED, dropped: load waited {run.wrk_wait:.1%}, others ran {run.others_cpu:.1%}"
        )
    return text


def run_round(number: int, plan: list[tuple[Case, Server]], cfg: Settings, runs: list[Run]) -> None:
    """Every (case, server) once, in plan order; a starved run is retried right away.

    Each run is appended to `runs` as it ends, so an interrupt keeps what was measured.
    """
    for case, server in plan:
        for attempt in range(1 + cfg.retries):
            run = run_one(server, case, number, attempt, cfg)
            runs.append(run)
            print(f"round {number}  {case.name:<16} {server.name:<18} {describe(run)}", flush=True)
            if not run.starved:
                break


# --------------------------------------------------------------------------- output


def machine(source_digest: str) -> dict[str, object]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    # gunicorn-h1c: whether gunicorn ran its C parser or its pure-Python one ("-").
    names = ("gateway", "uvicorn", "httptools", "uvloop", "h11", "h2", "granian", "gunicorn",
             "gunicorn-h1c", "hypercorn", "a2wsgi", "starlette", "fastapi", "flask")  # fmt: skip
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": _tool_version(["wrk", "-v"]),
        "h2load": _tool_version(["h2load", "--version"]),
        "gateway_source": f"{_git_state()}; sources sha256 {source_digest}",
        "gateway_form": _gateway_form(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "versions": {name: version(name) for name in names},
    }


def freeze_gateway(workdir: Path) -> str:
    """Copy the importable gateway package (gateway.adapters within it) into `workdir` and
    put it first on the servers' PYTHONPATH; return a digest of the copied sources."""
    digest = hashlib.sha256()
    for name in ("gateway",):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            sys.exit(f"cannot find the {name!r} package: pip install -e '.[bench]'")
        copy = workdir / name
        shutil.copytree(
            Path(spec.origin).parent, copy, ignore=shutil.ignore_patterns("__pycache__")
        )
        for path in sorted(copy.rglob("*.py")):
            digest.update(str(path.relative_to(workdir)).encode() + b"\0" + path.read_bytes())
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(workdir), os.environ.get("PYTHONPATH")])
    )
    return digest.hexdigest()[:12]


def _gateway_form() -> str:
    """What `gateway --version` says of the copy measured: compiled by mypyc or pure
    Python (gateway/native.py), since the two differ by a third on the hot path."""
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return done.stdout.decode().strip().partition(", ")[2] or "-"


def _tool_version(argv: list[str]) -> str:
    """`wrk debian/4.1.0-3+b2`, `h2load nghttp2/1.52.0`; "-" when it is not installed."""
    if shutil.which(argv[0]) is None:
        return "-"
    done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    return (done.stdout or done.stderr).decode().split(" [")[0].strip()


def _git_state() -> str:
    """The commit measured, and whether gateway/ or adapters/ had uncommitted changes."""
    repo = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(repo)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, timeout=10)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "gateway", "adapters"], capture_output=True, timeout=10
    )
    commit = head.stdout.decode().strip() or "unknown"
    return commit + (" + uncommitted changes" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "-"


def markdown_header(info: dict[str, object], args: argparse.Namespace) -> str:
    versions = info["versions"]
    assert isinstance(versions, dict)
    listed = ", ".join(f"{name} {version}" for name, version in versions.items())
    command = (
        f"python benchmarks/run.py --rounds {args.rounds} --duration {args.duration:g}"
        f" --warmup {args.warmup:g} --connections {args.connections} --streams {args.streams}"
    )
    return (
        f"{info['cores']} cores ({info['cpu']}), Linux {info['kernel']},"
        f" Python {info['python']}, {info['wrk']}, {info['h2load']}; {listed}; gateway at"
        f" {info['gateway_source']}, {info['gateway_form']}; run on {info['date']} (UTC)."
        f"\n\n`{command}`\n\n"
    )


def write_outputs(
    args: argparse.Namespace,
    runs: list[Run],
    cases: list[Case],
    servers: list[Server],
    info: dict[str, object],
) -> None:
    summary: dict[str, list[Row]] = {
        case.name: summarize(runs, case, [s for s in servers if s.serves(case)], args.rounds)
        for case in cases
    }
    print("\n" + report(summary, cases, markdown=False))
    if args.markdown:
        text = markdown_header(info, args) + report(summary, cases, markdown=True)
        args.markdown.write_text(text)
        print(f"markdown: {args.markdown}")
    if args.json:
        data = {
            "machine": info,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "runs": [{**asdict(r), "kept": r.kept, "flagged": r.flagged} for r in runs],
            "summary": {name: [asdict(row) for row in rows] for name, rows in summary.items()},
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")
        print(f"json: {args.json}")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--streams", type=int, default=10, help="concurrent streams per HTTP/2 connection"
    )
    parser.add_argument("--cases", help="comma-separated (default: all; see --list)")
    parser.add_argument("--servers", help="comma-separated (default: all; see --list)")
    parser.add_argument(
        "--gateway-http", default="h11",
        help="gateway variants besides the default: one per [server] http value, "
        "comma-separated; a value this gateway does not accept is skipped (default: h11)",
    )  # fmt: skip
    parser.add_argument("--retries", type=int, default=1, help="re-runs of a starved run")
    parser.add_argument("--json", type=Path, help="write every run and the tables as JSON")
    parser.add_argument("--markdown", type=Path, help="write the tables as Markdown")
    parser.add_argument("--list", action="store_true", help="list cases and servers; exit")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.duration < 2 or args.warmup < 1 or args.connections < 1:
        parser.error("need --rounds >= 1, --duration >= 2, --warmup >= 1, --connections >= 1")
    if args.streams < 1:
        parser.error("need --streams >= 1")
    if not 0 <= args.retries <= 5:
        parser.error("--retries: 0 to 5")
    return args


def pick(names: str | None, items: list[Named], kind: str) -> list[Named]:
    if not names:
        return list(items)
    wanted = names.split(",")
    unknown = set(wanted) - {item.name for item in items}
    if unknown:
        known = ", ".join(item.name for item in items)
        sys.exit(f"unknown {kind}: {', '.join(sorted(unknown))} (known: {known})")
    return [item for item in items if item.name in wanted]


def preflight(cases: list[Case]) -> None:
    """The tools these cases need: wrk for HTTP/1.1, h2load and curl for HTTP/2."""
    packages = {"taskset": "util-linux"}
    if any(not case.http2 for case in cases):
        packages["wrk"] = "wrk"
    if any(case.http2 for case in cases):
        packages |= {"h2load": "nghttp2-client", "curl": "curl"}
    missing = [tool for tool in packages if shutil.which(tool) is None]
    if missing:
        needed = " ".join(sorted({packages[tool] for tool in missing}))
        sys.exit(f"not found: {', '.join(missing)} (apt-get install -y {needed})")
    if not {0, 1} <= os.sched_getaffinity(0):
        sys.exit("needs cores 0 and 1: the server runs on core 0, the load on core 1")


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM ends the runner like Ctrl-C: its servers get stopped, the tables printed.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cases = pick(args.cases, CASES, "case")
    preflight(cases)
    signal.signal(signal.SIGTERM, _interrupt)
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        info = machine(freeze_gateway(Path(tmp) / "src"))
        servers = all_servers(ConfigFiles(Path(tmp)), args.gateway_http.split(","))
        if args.list:
            print("cases:  ", ", ".join(case.name for case in CASES))
            print("servers:", ", ".join(server.name for server in servers))
            return 0
        servers = pick(args.servers, servers, "server")
        plan = [(case, server) for case in cases for server in servers if server.serves(case)]
        cfg = Settings(
            args.duration, args.warmup, args.connections, args.streams, args.retries, Path(tmp)
        )
        print(f"gateway: {info['gateway_source']} (a copy taken now)")
        print(f"{len(plan)} runs per round, {args.rounds} round(s)", flush=True)
        runs: list[Run] = []
        status = 0
        try:
            for number in range(1, args.rounds + 1):
                run_round(number, plan, cfg, runs)
        except KeyboardInterrupt as stop:
            print(f"interrupted ({stop or 'SIGINT'}): the tables below hold the runs so far")
            status = 130
        write_outputs(args, runs, cases, servers, info)
    return status


if __name__ == "__main__":
    sys.exit(main())
