"""`.ci/other-pythons` (issue 14, point 6): the unit tests on each further Python that the
classifiers name, found on PATH or under pyenv; a version that is absent is skipped with a
line, since a fresh machine may have no pyenv.

The script runs on a copy of itself next to a pyproject.toml of the test's own, with fake
interpreters whose venvs hold a `pip` and a `pytest` that record their calls in a file:
what is checked is which interpreter it picks and what it runs, not the unit tests again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.paths import EXAMPLES_DIR

SCRIPT = EXAMPLES_DIR.parent / ".ci" / "other-pythons"
# A fake interpreter: runs `-c ''` (the script's probe) and makes a venv whose tools
# record "<the interpreter> <tool> <arguments>".
FAKE_PYTHON = """#!/bin/bash
if [[ $1 == -m && $2 == venv ]]; then
    mkdir -p "$3/bin"
    for tool in pip pytest; do
        printf '#!/bin/bash\\necho "%s %s $*" >> "$RECORD"\\n' "$0" "$tool" > "$3/bin/$tool"
        chmod +x "$3/bin/$tool"
    done
fi
"""
# The same, but its venv's pytest fails.
FAILING_PYTHON = FAKE_PYTHON.replace(
    "fi\n", "    printf '#!/bin/bash\\nexit 1\\n' > \"$3/bin/pytest\"\nfi\n"
)
# What a pyenv shim does for a version that is installed but not selected.
NOT_SELECTED_SHIM = "#!/bin/bash\necho 'pyenv: command not found' >&2\nexit 127\n"


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def project(tmp_path: Path, minors: list[int]) -> Path:
    """A copy of the script beside a pyproject.toml naming Python 3.<minor> for each."""
    root = tmp_path / "project"
    shutil.copy(SCRIPT, executable(root / ".ci" / "other-pythons", ""))
    classifiers = ", ".join(f'"Programming Language :: Python :: 3.{m}"' for m in minors)
    (root / "pyproject.toml").write_text(f"[project]\nclassifiers = [{classifiers}]\n")
    return root


def run(root: Path, bin_dir: Path, pyenv_root: Path) -> subprocess.CompletedProcess[str]:
    """The script with a PATH of `bin_dir` alone: python3 (this test's own), the few tools
    the script uses, and whatever fakes the test put there."""
    here = f"3.{sys.version_info.minor}"
    os.symlink(sys.executable, bin_dir / "python3")
    os.symlink(sys.executable, bin_dir / f"python{here}")
    for tool in ("dirname", "ls", "sort", "mkdir", "chmod", "mktemp", "rm", "tar", "cat"):
        os.symlink(str(shutil.which(tool)), bin_dir / tool)
    env = {"PATH": str(bin_dir), "PYENV_ROOT": str(pyenv_root), "RECORD": str(root / "calls")}
    return subprocess.run(
        [str(shutil.which("bash")), str(root / ".ci" / "other-pythons")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=root,
    )


def test_each_further_python_found_runs_the_unit_tests_and_the_absent_are_skipped(
    tmp_path: Path,
) -> None:
    here = sys.version_info.minor
    root = project(tmp_path, [here, here + 1, here + 2, here + 3])
    bin_dir, pyenv = tmp_path / "bin", tmp_path / "pyenv"
    on_path = executable(bin_dir / f"python3.{here + 1}", FAKE_PYTHON)
    executable(bin_dir / f"python3.{here + 2}", NOT_SELECTED_SHIM)  # found under pyenv
    executable(pyenv / f"versions/3.{here + 2}.0/bin/python3.{here + 2}", FAKE_PYTHON)
    newest = executable(pyenv / f"versions/3.{here + 2}.1/bin/python3.{here + 2}", FAKE_PYTHON)
    # A free-threaded build is another interpreter, not a newer patch release.
    executable(pyenv / f"versions/3.{here + 2}.9t/bin/python3.{here + 2}", FAKE_PYTHON)

    result = run(root, bin_dir, pyenv)

    assert result.returncode == 0, result.stderr
    assert f"Python 3.{here + 3} is not on this machine" in result.stdout
    # The versions run side by side, so their calls interleave; each one's are in order.
    calls = (root / "calls").read_text().splitlines()
    for python, minor in ((on_path, here + 1), (newest, here + 2)):
        install, tests = [call for call in calls if call.startswith(f"{python} ")]
        # Each installs from a copy of the checkout of its own (the script's run_version).
        assert install.startswith(f"{python} pip install -q ")
        assert install.endswith(f"/source-3.{minor}[test]")
        assert tests == f"{python} pytest -q tests/unit tests/system/test_native.py"
        assert f"other-pythons: Python 3.{minor}, passed:" in result.stdout
    assert len(calls) == 4
    assert (root / f".venv-3.{here + 1}").is_dir() and (root / f".venv-3.{here + 2}").is_dir()
    assert f"Python 3.{here}" not in result.stdout  # the whole suite runs there


def test_with_no_further_python_it_says_so_and_passes(tmp_path: Path) -> None:
    here = sys.version_info.minor
    root = project(tmp_path, [here, here + 1])
    (tmp_path / "bin").mkdir()
    result = run(root, tmp_path / "bin", tmp_path / "no-pyenv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"other-pythons: Python 3.{here + 1} is not on this machine; its unit tests are skipped"
    ]


def test_a_version_whose_tests_fail_fails_the_script_and_shows_its_output(
    tmp_path: Path,
) -> None:
    here = sys.version_info.minor
    root = project(tmp_path, [here, here + 1, here + 2])
    bin_dir = tmp_path / "bin"
    executable(bin_dir / f"python3.{here + 1}", FAKE_PYTHON)
    executable(bin_dir / f"python3.{here + 2}", FAILING_PYTHON)
    result = run(root, bin_dir, tmp_path / "no-pyenv")
    assert result.returncode == 1
    assert f"other-pythons: Python 3.{here + 1}, passed:" in result.stdout
    assert f"other-pythons: Python 3.{here + 2}, FAILED:" in result.stdout
    assert result.stdout.splitlines()[-1] == f"other-pythons: failed on Python 3.{here + 2}"
