"""The Django example moved under a prefix keeps its admin's CSS with a `static` mount
(examples/README.md, issue 13, point 14).

Django puts SCRIPT_NAME in front of a relative STATIC_URL, so under /legacy the admin
links to /legacy/static/...; `staticfiles_urlpatterns()` then no longer matches under
the mount. A `static` mount at /legacy/static serves the files instead. Here it serves
Django's own admin static directory, what `collectstatic` would copy, so the test writes
nothing into the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from support.paths import EXAMPLES_DIR
from support.processes import GatewayProcess

# Generous: the first start migrates the example's SQLite database.
START_DEADLINE_S = 60.0
DJANGO_MOUNT = f"""
[server]
pythonpath = [{str(EXAMPLES_DIR)!r}]
access_log = false

[[mount]]
prefix = "/legacy"
app = "django_site.mysite.wsgi:application"
interface = "wsgi"
threads = 2
"""


def admin_static_dir() -> str:
    import django.contrib.admin

    return str(Path(django.contrib.admin.__file__).parent / "static")


def admin_css(process: GatewayProcess) -> tuple[str, httpx.Response]:
    """The admin login page's first stylesheet link, and the answer for it."""
    process.wait_for_line("serving on", START_DEADLINE_S)
    page = httpx.get(process.url + "/legacy/admin/login/", timeout=START_DEADLINE_S)
    assert page.status_code == 200
    found = re.search(r'href="([^"]+\.css)"', page.text)
    assert found is not None, page.text[:500]
    return found[1], httpx.get(process.url + found[1], timeout=START_DEADLINE_S)


@pytest.mark.parametrize("with_static_mount", [False, True])
def test_admin_css_under_a_prefix_needs_the_static_mount(
    tmp_path: Path, with_static_mount: bool
) -> None:
    config = tmp_path / "gateway.toml"
    text = DJANGO_MOUNT
    if with_static_mount:
        text += f'\n[[mount]]\nprefix = "/legacy/static"\nstatic = {admin_static_dir()!r}\n'
    config.write_text(text)
    process = GatewayProcess(config, env={"EXAMPLE_DB_PATH": str(tmp_path / "db.sqlite3")})
    try:
        link, css = admin_css(process)
    finally:
        assert process.stop() == 0
    assert link.startswith("/legacy/static/admin/")  # Django added SCRIPT_NAME itself
    if with_static_mount:
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
    else:
        assert css.status_code == 404  # the problem the README describes
