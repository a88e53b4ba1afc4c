"""The README's performance section is made from one kept run, never typed by hand
(issue 18, point 5; benchmarks/harness/readme.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness.readme import (  # noqa: E402 - the runner's own import root
    NONE,
    TARGETS,
    by_server,
    current_section,
    header,
    render,
    replace_section,
    targets_table,
)

RESULTS = ROOT / "benchmarks" / "results" / "latest.json"


def kept_run() -> dict[str, Any]:
    run: dict[str, Any] = json.loads(RESULTS.read_text())
    return run


def test_the_readme_section_is_the_kept_run_rendered() -> None:
    readme = (ROOT / "README.md").read_text()
    assert current_section(readme) == render(kept_run()), (
        "README.md's performance section differs from benchmarks/results/latest.json:"
        " run `python benchmarks/tables.py benchmarks/results/latest.json`"
    )


def test_the_header_says_when_where_and_which_form_ran() -> None:
    run = kept_run()
    machine = run["machine"]
    text = header(run)
    for said in (machine["date"], machine["cpu"], machine["python"], machine["gateway_form"]):
        assert said in text
    assert machine["gateway_form"] in ("compiled by mypyc",) or "pure Python" in text
    assert f"granian {machine['versions']['granian']}" in text
    assert machine["gateway_source"].split(";")[0] in text


def test_the_kept_run_measured_every_target() -> None:
    table = "\n".join(targets_table({}))
    assert table.count(f"| {NONE} | missed |") == len(TARGETS)  # nothing measured: nothing met
    measured = "\n".join(targets_table(by_server(kept_run())))
    assert f"| {NONE} |" not in measured


def test_a_target_is_met_from_its_ratio_on() -> None:
    target = TARGETS[0]

    def verdict(value: float) -> str:
        row = {"server": target.peer, "rps": 1000.0, "ratios": {"gateway": value}}
        return targets_table({target.case: {target.peer: row}})[2]

    assert verdict(target.at_least).endswith("| met |")
    assert verdict(target.at_least - 0.01).endswith("| missed |")


def test_replacing_the_section_keeps_what_is_around_it() -> None:
    text = "before\n" + render(kept_run()) + "\nafter\n"
    assert replace_section(text, "X") == "before\nX\nafter\n"
