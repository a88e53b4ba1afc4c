"""Write the README's performance section from one run's JSON (harness/readme.py).

    python benchmarks/run.py --rounds 3 --json benchmarks/results/latest.json
    python benchmarks/tables.py benchmarks/results/latest.json

It rewrites the section between the markers in README.md; tests/unit/
test_benchmark_tables.py then holds README.md to that file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.readme import render, replace_section

README = Path(__file__).resolve().parents[1] / "README.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a run's JSON (run.py --json)")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args()
    section = render(json.loads(args.results.read_text()))
    args.readme.write_text(replace_section(args.readme.read_text(), section))
    print(f"{args.readme}: performance section written from {args.results}")


if __name__ == "__main__":
    main()
