"""The build backend: setuptools', with the packages mypyc needs to check the types of the
compiled modules (setup.py) added to a wheel's build requirements. Rules:
1. The requirements are read from pyproject.toml, where they are declared once: the
   project's dependencies, and the extras whose modules the type check reaches (mypy
   follows the compiled modules' imports into the whole package, and an unresolved import
   fails the strict check, which would leave the build pure Python).
2. An sdist and the metadata need none of them: only the wheel builds add them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from setuptools import build_meta
from setuptools.build_meta import *  # noqa: F403 (the rest of the backend, as it is)

# The extras the package's modules import where present (gateway/server/metrics.py,
# gateway/process/reload.py): the type check needs their types too.
TYPED_EXTRAS = ("metrics", "reload")


def _type_check_requirements() -> list[str]:
    """What the compiled modules' type check imports (rule "the requirements are read")."""
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [*project["dependencies"], *(req for name in TYPED_EXTRAS for req in extras[name])]


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    """setuptools' requirements and the type check's (rule "only the wheel builds")."""
    return [*build_meta.get_requires_for_build_wheel(config_settings), *_type_check_requirements()]


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    """As get_requires_for_build_wheel, for `pip install -e`."""
    return [
        *build_meta.get_requires_for_build_editable(config_settings),
        *_type_check_requirements(),
    ]
