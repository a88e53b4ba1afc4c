"""`gateway serve module:app`: one app at "/" with no mount file (issue 14, point 1).

The server runs as a subprocess on a socket the test bound (support.processes GatewayProcess);
the apps are small modules written into the test's own directory, which is the
server's working directory, as `main.py` is for a uvicorn user.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.deadlines import CLIENT_TIMEOUT_S, wait_until
from support.paths import APPS_DIR
from support.processes import GATEWAY, GatewayProcess

MAIN_PY = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = f"asgi {scope['root_path']!r} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def create_app():
    return app


def application(environ, start_response):
    start_response("200 OK", [("content-type", "text/plain")])
    return [f"wsgi {environ['SCRIPT_NAME']!r} {environ['PATH_INFO']}".encode()]
"""


Serve = Callable[..., GatewayProcess]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory holding main.py, as a uvicorn user's project does."""
    (tmp_path / "main.py").write_text(MAIN_PY)
    return tmp_path


@pytest.fixture
def serve(site: Path) -> Iterator[Serve]:
    """`serve(target, *flags)` starts `gateway serve` in the site's directory."""
    started: list[GatewayProcess] = []

    def start(target: str, *args: str) -> GatewayProcess:
        process = GatewayProcess(target, *args, cwd=site)
        started.append(process)
        process.wait_for_line("serving on")
        return process

    yield start
    for process in started:
        assert process.stop() == 0


def get(process: GatewayProcess, path: str) -> str:
    response = httpx.get(process.url + path, timeout=CLIENT_TIMEOUT_S)
    assert response.status_code == 200
    return response.text


def gateway(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*GATEWAY, *args], capture_output=True, text=True, timeout=60, cwd=site)


def test_an_asgi_app_from_the_current_directory_is_served_at_the_root(serve: Serve) -> None:
    process = serve("main:app")
    assert get(process, "/users/1") == "asgi '' /users/1"


def test_a_wsgi_app_is_detected(serve: Serve) -> None:
    process = serve("main:application")
    assert get(process, "/users/1") == "wsgi '' /users/1"


def test_interface_overrides_detection(serve: Serve, site: Path) -> None:
    process = serve("main:application", "--interface", "wsgi")
    assert get(process, "/x") == "wsgi '' /x"
    refused = gateway(site, "serve", "main:app", "--interface", "wsgi")
    assert refused.returncode == 3
    assert 'interface = "wsgi"' in refused.stderr


@pytest.mark.parametrize("how", [["main:create_app", "--factory"], ["main:create_app()"]])
def test_a_factory_is_called(serve: Serve, how: list[str]) -> None:
    process = serve(*how)
    assert get(process, "/y") == "asgi '' /y"


def test_it_is_the_same_server_as_a_one_mount_file(serve: Serve) -> None:
    """Settings, the access log's mount label and lifespan: all the mount file's."""
    process = serve("probe_asgi:app", "--pythonpath", str(APPS_DIR))
    scope = httpx.get(process.url + "/scope", timeout=CLIENT_TIMEOUT_S).json()
    assert scope["state"] == {"probe": "started"}  # lifespan ran, as for a mount
    assert scope["extensions"]["gateway"]["mount"] == "/"


def test_check_imports_the_app_and_prints_its_route(site: Path) -> None:
    result = gateway(site, "check", "main:application")
    assert result.returncode == 0, result.stderr
    assert "config:   main:application" in result.stdout
    assert ["/", "wsgi", "main:application", "10"] in [
        line.split() for line in result.stdout.splitlines()
    ]


def test_check_of_an_app_that_is_not_there_exits_1(site: Path) -> None:
    result = gateway(site, "check", "main:nothing")
    assert result.returncode == 1
    assert "nothing" in result.stderr


@pytest.mark.parametrize("target", ["main.app", "no_such_dir/gateway"])
def test_neither_a_file_nor_an_app_gets_one_line_naming_both(site: Path, target: str) -> None:
    result = gateway(site, "serve", target)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert (
        "expected a mount file (a readable TOML file) or an app as module:attribute"
        in result.stderr
    )


def test_a_missing_toml_file_is_still_a_file(site: Path) -> None:
    result = gateway(site, "serve", "gateway.toml")
    assert result.returncode == 1
    assert "cannot read the mount file" in result.stderr


def test_a_file_named_like_an_app_is_a_mount_file(site: Path) -> None:
    (site / "main:app").write_text("[server]\nworkers = 0\n")
    result = gateway(site, "check", "main:app")
    assert result.returncode == 1
    assert "[server] workers: must be >= 1" in result.stderr


def test_app_flags_with_a_mount_file_are_a_usage_error(site: Path) -> None:
    (site / "gateway.toml").write_text('[[mount]]\nprefix = "/"\napp = "main:app"\n')
    result = gateway(site, "check", "gateway.toml", "--interface", "asgi")
    assert result.returncode == 1
    assert "--interface applies to one app served without a mount file" in result.stderr


def test_hup_reloads_the_app_as_it_reloads_a_mount_file(serve: Serve, site: Path) -> None:
    """The supervisor re-reads its target on SIGHUP: for one app, the app's new code."""
    process = serve("main:app", "-w", "2")
    assert get(process, "/a") == "asgi '' /a"
    (site / "main.py").write_text(MAIN_PY.replace('f"asgi ', 'f"new '))
    process.proc.send_signal(signal.SIGHUP)
    process.wait_for_line("generation 2 ready")
    # An old worker may still take a connection while it learns to stop.
    wait_until(lambda: get(process, "/a") == "new '' /a")
