"""Platforms (issue 14, point 6): uvloop is asked for only where it installs, and CI runs
what the README says, on the Pythons that pyproject.toml claims."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from packaging.requirements import Requirement
from support.paths import EXAMPLES_DIR

ROOT = EXAMPLES_DIR.parent
PYTHON_CLASSIFIER = re.compile(r"Programming Language :: Python :: 3\.(\d+)$")


def readme_test_command() -> str:
    """The README's command that installs the test dependencies and runs the suite."""
    blocks = re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    commands = [block for block in blocks if "pip install '.[test]'" in block]
    assert len(commands) == 1, commands
    return str(commands[0])


def test_ci_runs_exactly_the_readme_test_command_under_set_e() -> None:
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "set -euo pipefail" in script
    assert script[-1] == readme_test_command()


def test_the_readme_test_command_runs_the_unit_tests_on_the_other_pythons() -> None:
    steps = readme_test_command().split(" && ")
    assert ".ci/other-pythons" in steps
    assert "pytest" in steps  # the whole suite, on the python3 of the first step
    # then the unit tests on the pure form of a compiled install (setup.py, gateway/native.py)
    assert steps[-1] == "GATEWAY_PURE_PYTHON=1 pytest -q tests/unit"


def project() -> dict[str, Any]:
    """pyproject.toml's [project] table."""
    table: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return table


@pytest.mark.parametrize(
    ("environment", "installs"),
    [
        ({"sys_platform": "linux", "platform_python_implementation": "CPython"}, True),
        ({"sys_platform": "darwin", "platform_python_implementation": "CPython"}, True),
        ({"sys_platform": "win32", "platform_python_implementation": "CPython"}, False),
        ({"sys_platform": "linux", "platform_python_implementation": "PyPy"}, False),
    ],
)
def test_uvloop_is_a_dependency_only_where_it_installs(
    environment: dict[str, str], installs: bool
) -> None:
    dependencies = [Requirement(text) for text in project()["dependencies"]]
    (uvloop,) = [requirement for requirement in dependencies if requirement.name == "uvloop"]
    assert uvloop.marker is not None and uvloop.marker.evaluate(environment) is installs


def test_the_classifiers_name_every_python_from_the_oldest_supported_on() -> None:
    classifiers = project()["classifiers"]
    minors = sorted(int(match[1]) for c in classifiers if (match := PYTHON_CLASSIFIER.match(c)))
    assert project()["requires-python"] == f">=3.{minors[0]}"
    assert minors == list(range(minors[0], minors[-1] + 1))
    assert minors[0] <= 11 and minors[-1] >= 13
