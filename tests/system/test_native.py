"""The compiled and the pure form (issue 18, point 2; gateway/native.py): which one runs
is said, and GATEWAY_PURE_PYTHON=1 runs the .py files of a compiled install.

Each check runs a fresh interpreter with `-P`, outside the checkout, so that it imports
the installed package (compiled where the install compiled it) and the finders that
GATEWAY_PURE_PYTHON sets up start from nothing."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support.deadlines import CLIENT_TIMEOUT_S

# What a fresh interpreter reports: the file of a module setup.py compiles, and the form.
REPORT = "import gateway.http.session as m, gateway.native as n; print(m.__file__); print(n.form())"


def report(tmp_path: Path, **env: str) -> tuple[str, str]:
    """The session module's file and the form, from a fresh interpreter."""
    environment = {k: v for k, v in os.environ.items() if k != "GATEWAY_PURE_PYTHON"}
    result = subprocess.run(
        [sys.executable, "-P", "-c", REPORT],
        cwd=tmp_path,
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=CLIENT_TIMEOUT_S,
    )
    module_file, form = result.stdout.splitlines()
    return module_file, form


def test_pure_python_env_runs_the_source_files(tmp_path: Path) -> None:
    module_file, form = report(tmp_path, GATEWAY_PURE_PYTHON="1")
    assert module_file.endswith("session.py")
    assert form == "pure Python (GATEWAY_PURE_PYTHON=1)"


def test_the_form_said_is_the_form_that_runs(tmp_path: Path) -> None:
    module_file, form = report(tmp_path)
    if module_file.endswith(".py"):
        assert form == "pure Python (not compiled at install)"
    else:
        assert form == "compiled by mypyc"


def can_compile() -> bool:
    """Whether this machine has what setup.py's mypyc build needs: the C compiler Python
    was built with, and Python's headers."""
    compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")[:1]
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    return bool(compiler) and shutil.which(compiler[0]) is not None and headers.is_file()


def test_an_install_that_could_compile_did(tmp_path: Path) -> None:
    """setup.py falls back to pure Python without a word at run time (its rule "a build
    that cannot compile"), so a compile that broke would pass every other test: on a
    machine that can compile, as CI's can, the install must be the compiled form, on
    every Python (setup.py, rule "every Python")."""
    module_file, form = report(tmp_path)
    checkout_package = Path(__file__).resolve().parents[2] / "gateway"
    if Path(module_file).resolve().is_relative_to(checkout_package.resolve()):
        pytest.skip("an editable install runs the checkout's .py files, by design")
    if not can_compile():
        pytest.skip("no C compiler or no Python headers here: pure Python is expected")
    assert form == "compiled by mypyc", (
        "this machine can compile, yet the install is pure Python: read the install's log"
        " for setup.py's reason (or it was made with GATEWAY_PURE_PYTHON=1)"
    )


def test_version_names_the_form(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-P", "-m", "gateway", "--version"],
        cwd=tmp_path,
        env={**os.environ, "GATEWAY_PURE_PYTHON": "1"},
        capture_output=True,
        text=True,
        check=True,
        timeout=CLIENT_TIMEOUT_S,
    )
    assert result.stdout == "gateway 0.1.0, pure Python (GATEWAY_PURE_PYTHON=1)\n"
