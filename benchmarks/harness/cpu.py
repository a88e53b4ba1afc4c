"""Did something else take CPU during a measured run? Task accounting from /proc.

/proc/PID/task/TID/schedstat holds a thread's time on a CPU and its time waiting on a
runqueue (2nd field), in ns. /proc/PID/stat holds, per process, the CPU time of children
it has reaped (cutime, cstime), which catches short-lived processes, such as a test suite
run by someone else on the machine, that start and end between two snapshots.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

# A run is starved when wrk waited on a runqueue, or tasks other than the server and wrk
# used CPU, for more than this share of the measured wall time. On this 2-core machine,
# quiet, both stay under 1%. 5% taken from either core moves req/s by up to about 5%,
# the size of the differences worth reporting, so such a run measures the neighbour
# rather than the server; it is dropped.
STARVED_SHARE = 0.05
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Snapshot:
    """Every thread's (run, wait) in ns, and the CPU seconds of all reaped children."""

    at: float
    tasks: dict[tuple[int, int], tuple[int, int]]
    reaped_s: float


def snapshot() -> Snapshot:
    tasks: dict[tuple[int, int], tuple[int, int]] = {}
    for path in Path("/proc").glob("[0-9]*/task/[0-9]*/schedstat"):
        with contextlib.suppress(OSError, ValueError):
            run, wait, _ = path.read_text().split()
            tasks[int(path.parts[2]), int(path.parts[4])] = (int(run), int(wait))
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            fields = text[text.rfind(")") + 2 :].split()
            ticks += int(fields[13]) + int(fields[14])  # cutime + cstime
    return Snapshot(time.monotonic(), tasks, ticks / CLK_TCK)


@dataclass
class Starvation:
    wrk_wait: float  # share of wall time wrk's threads waited on core 1's runqueue
    others_cpu: float  # share of wall time used by tasks neither the server's nor wrk's
    server_wait: float  # runqueue wait of the server's busiest thread (information only)

    @property
    def starved(self) -> bool:
        return max(self.wrk_wait, self.others_cpu) > STARVED_SHARE


def starvation(before: Snapshot, after: Snapshot, server: list[int], wrk: int) -> Starvation:
    """What took CPU from the measurement between two snapshots.

    wrk runs alone on core 1, so any runqueue wait of its threads was caused by another
    task. The server's threads share core 0 with each other (a WSGI pool: 10 threads and
    one GIL), so their wait mostly counts waiting for a sibling and cannot tell starvation
    (it is recorded, not judged). Instead, the CPU time of every other task, and of the
    children reaped meanwhile, is added up: on a 2-core machine it came from our cores.
    """
    wall_ns = (after.at - before.at) * 1e9
    wrk_wait = others = 0.0
    busiest = (0, 0)  # (run, wait) of the server thread that ran the most
    for key, (run, wait) in after.tasks.items():
        run0, wait0 = before.tasks.get(key, (0, 0))
        if key[0] == wrk:
            wrk_wait += wait - wait0
        elif key[0] in server:
            busiest = max(busiest, (run - run0, wait - wait0))
        else:
            others += run - run0
    others += (after.reaped_s - before.reaped_s) * 1e9
    return Starvation(wrk_wait / wall_ns, others / wall_ns, busiest[1] / wall_ns)
