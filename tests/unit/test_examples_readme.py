"""examples/README.md says only what is true of the code and the packaging
(issue 13, point 14): the logger names it quotes exist, and the `examples` extra
installs the clients it tells the reader to run."""

from __future__ import annotations

import re
import tomllib

from support.paths import EXAMPLES_DIR

ROOT = EXAMPLES_DIR.parent
README = (EXAMPLES_DIR / "README.md").read_text()
# A log line as the README quotes it: "... [pid] LEVEL logger.name: message".
QUOTED_LINE = re.compile(r"\[\d+\] (?:DEBUG|INFO|WARNING|ERROR|CRITICAL) ([\w.]+): (\w+ \w+)")
DEFINED_LOGGER = re.compile(r"""logging\.getLogger\(["']([\w.]+)["']\)""")


def loggers_that_log(words: str) -> set[str]:
    """The logger names of the modules whose source has a message starting `words`."""
    sources = [*(ROOT / "gateway").glob("**/*.py"), *(ROOT / "adapters").glob("*.py")]
    texts = [path.read_text() for path in sources]
    return {name for text in texts if f'"{words}' in text for name in DEFINED_LOGGER.findall(text)}


def test_the_quoted_logger_names_are_the_real_ones() -> None:
    quoted = QUOTED_LINE.findall(README)
    assert quoted, "the README quotes no log line any more; drop or change this test"
    for name, words in quoted:
        assert name in loggers_that_log(words), f"{words!r} is not logged by {name}"


def test_the_examples_extra_installs_the_websocket_client_the_readme_runs() -> None:
    assert "python -m websockets" in README
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = project["optional-dependencies"]["examples"]
    assert any(re.match(r"websockets\b", requirement) for requirement in extra)
