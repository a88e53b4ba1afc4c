"""Real frameworks side by side: the examples' Flask, Django and FastAPI apps in one server.

One server for the whole module serves the three example apps together (plus an ASGI 2
app and the probe apps), over real sockets, with httpx as the client.

Django keeps its settings in process-global state (`django.conf.settings`, the app
registry), and tests/unit/test_adapters.py configures those settings its own way with
`settings.configure()`. Whichever of the two ran first in a shared process would decide
the settings of the other, so this module runs the server as a subprocess
(`python -m gateway serve CONFIG --bind fd://N`, on a socket bound here): the example
site gets its own settings module and its own database in a temporary directory
(EXAMPLE_DB_PATH), and nothing here imports Django in the test process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from support.paths import APPS_DIR, EXAMPLES_DIR
from support.processes import GatewayProcess
from support.servers import HTTP_SESSIONS
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

# Generous: the first start migrates the example's SQLite database.
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0
UPLOAD_BYTES = 8 * 1024 * 1024

MOUNTS = f"""
[server]
pythonpath = [{str(EXAMPLES_DIR)!r}, {str(APPS_DIR)!r}]
log_level = "info"
access_log = false
graceful_timeout = 5

[[mount]]
prefix = "/api"
app = "api_service:app"
interface = "asgi"
lifespan = "on"

[[mount]]
prefix = "/flask"
app = "flask_site:create_app()"
interface = "wsgi"
threads = 4
max_body_bytes = 67108864

[[mount]]
prefix = "/"
app = "django_site.mysite.wsgi:application"
interface = "wsgi"
threads = 4

[[mount]]
prefix = "/legacy2"
app = "asgi2_app:app"
interface = "asgi"

[[mount]]
prefix = "/probe"
app = "probe_asgi:app"
interface = "asgi"

[[mount]]
prefix = "/probe-wsgi"
app = "probe_wsgi:app"
interface = "wsgi"
"""


def server_env(db_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        # Never the example's db.sqlite3 in the source tree.
        "EXAMPLE_DB_PATH": str(db_path),
        # Explicit, so that a value inherited from the environment cannot win.
        "DJANGO_SETTINGS_MODULE": "django_site.mysite.settings",
    }
    env.pop("PROBE_LIFESPAN_LOG", None)
    return env


def write_mounts(directory: Path) -> Path:
    config = directory / "gateway.toml"
    config.write_text(MOUNTS)
    return config


@pytest.fixture(scope="module", params=HTTP_SESSIONS)
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[GatewayProcess]:
    """One server per HTTP session (`--http`): every test here runs against both."""
    directory = tmp_path_factory.mktemp("frameworks")
    config = write_mounts(directory)
    env = server_env(directory / "example.sqlite3")
    process = GatewayProcess(config, "--http", request.param, env=env)
    process.wait_for_line("serving on", START_DEADLINE_S)
    yield process
    assert process.stop() == 0, "".join(process.seen)


@pytest.fixture
def client(server: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def base(client: httpx.Client) -> str:
    """The server's URL, without a trailing slash (as url_for and reverse() print it)."""
    return str(client.base_url).rstrip("/")


def location(response: httpx.Response) -> str:
    """The redirect target, made absolute the way a browser resolves it."""
    return urljoin(str(response.url), response.headers["location"])


def digest(data: bytes) -> dict[str, object]:
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def upload_bytes() -> bytes:
    # Not one repeated byte: a dropped or reordered piece changes the digest.
    return hashlib.sha256(b"gateway").digest() * (UPLOAD_BYTES // 32) + b"tail"


# --- prefix semantics ---------------------------------------------------------------


def test_fastapi_sees_root_path_and_whole_path(client: httpx.Client) -> None:
    response = client.get("/api/whoami")
    assert response.status_code == 200
    assert response.json() == {
        "root_path": "/api",
        "path": "/api/whoami",
        "url_for_item": f"{base(client)}/api/items/42",
        "url_for_whoami": f"{base(client)}/api/whoami",
    }


def test_fastapi_routes_under_its_prefix(client: httpx.Client) -> None:
    assert client.get("/api/items/7").json() == {"id": 7, "name": "item 7"}
    openapi = client.get("/api/openapi.json")
    assert openapi.status_code == 200
    assert "/items/{item_id}" in openapi.json()["paths"]
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.text


def test_flask_url_for_carries_the_prefix(client: httpx.Client) -> None:
    response = client.get("/flask/urls")
    assert response.status_code == 200
    assert response.json() == {
        "index": "/flask/",
        "hello": "/flask/hello",
        "echo": "/flask/echo",
        "stream": "/flask/stream?chunks=3",
        "index_external": f"{base(client)}/flask/",
    }


def test_flask_sees_script_name_and_path_info(client: httpx.Client) -> None:
    assert client.get("/flask/hello").json() == {
        "message": "hello from Flask",
        "script_root": "/flask",
        "path": "/hello",
    }


def test_django_at_the_root_mount_has_an_empty_script_name(client: httpx.Client) -> None:
    response = client.get("/where/")
    assert response.status_code == 200
    assert response.json() == {
        "path": "/where/",
        "path_info": "/where/",
        "script_name": "",
        "reverse_home": "/",
        "reverse_where": "/where/",
        "reverse_admin": "/admin/",
        "absolute_uri": f"{base(client)}/where/",
    }
    home = client.get("/")
    assert home.status_code == 200
    assert "The legacy Django site" in home.text


@pytest.mark.parametrize("path", ["/flaskx", "/apiary", "/flaskx/hello", "/apiary/whoami"])
def test_prefixes_match_on_segment_boundaries(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    # Django's DEBUG 404 page names the path it did not find: Django answered.
    assert "Page not found" in response.text
    assert path in response.text
    assert "hello from Flask" not in response.text


# --- redirects ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "target"),
    [
        ("/flask", 308, "/flask/"),
        ("/flask/old-home", 301, "/flask/"),
        ("/api", 307, "/api/"),
        ("/admin", 301, "/admin/"),
        ("/admin/", 302, "/admin/login/?next=/admin/"),
    ],
)
def test_redirects_made_by_the_apps_carry_the_prefix(
    client: httpx.Client, path: str, status: int, target: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert location(response) == f"{base(client)}{target}"


def test_flask_redirect_lands_on_the_flask_index(client: httpx.Client) -> None:
    response = client.get("/flask/old-home", follow_redirects=True)
    assert response.status_code == 200
    assert "The legacy Flask app" in response.text
    assert 'href="/flask/hello"' in response.text


# --- the Django admin with CSRF -----------------------------------------------------


def admin_login_form(client: httpx.Client) -> str:
    """GET the login page; return the form's CSRF token (the cookie is kept by client)."""
    page = client.get("/admin/login/")
    assert page.status_code == 200
    assert "csrftoken" in client.cookies
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_django_admin_login_with_csrf(client: httpx.Client) -> None:
    token = admin_login_form(client)
    form = {
        "csrfmiddlewaretoken": token,
        "username": "admin",
        "password": "admin",
        "next": "/admin/",
    }
    response = client.post("/admin/login/", data=form)
    assert response.status_code == 302, response.text
    assert location(response) == f"{base(client)}/admin/"
    assert "sessionid" in client.cookies
    admin = client.get("/admin/")
    assert admin.status_code == 200
    assert "<title>Site administration | Django site admin</title>" in admin.text


def test_django_admin_login_without_the_token_is_refused(client: httpx.Client) -> None:
    admin_login_form(client)  # the cookie alone is not enough
    form = {"username": "admin", "password": "admin", "next": "/admin/"}
    response = client.post("/admin/login/", data=form)
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert "sessionid" not in client.cookies


def test_django_admin_rejects_a_wrong_password(client: httpx.Client) -> None:
    token = admin_login_form(client)
    form = {"csrfmiddlewaretoken": token, "username": "admin", "password": "nope"}
    response = client.post("/admin/login/", data=form)
    assert response.status_code == 200
    assert "Please enter the correct username and password" in response.text


def test_django_admin_post_without_cookie_or_token_is_refused(client: httpx.Client) -> None:
    form = {"username": "admin", "password": "admin", "next": "/admin/"}
    response = client.post("/admin/login/", data=form)
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert "sessionid" not in response.cookies


# --- uploads ------------------------------------------------------------------------


def test_flask_large_upload_with_content_length(client: httpx.Client) -> None:
    data = upload_bytes()
    response = client.post(
        "/flask/echo", content=data, headers={"content-type": "application/octet-stream"}
    )
    assert response.request.headers["content-length"] == str(len(data))
    assert response.status_code == 200
    assert response.json() == digest(data)


def test_flask_large_upload_chunked(client: httpx.Client) -> None:
    data = upload_bytes()

    def pieces() -> Iterator[bytes]:
        step = 100_003  # odd-sized, so pieces never line up with the server's buffers
        for start in range(0, len(data), step):
            yield data[start : start + step]

    response = client.post(
        "/flask/echo", content=pieces(), headers={"content-type": "application/octet-stream"}
    )
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 200
    assert response.json() == digest(data)


@pytest.mark.parametrize("chunked", [False, True])
def test_fastapi_large_upload(client: httpx.Client, chunked: bool) -> None:
    data = upload_bytes()
    step = 1 << 20
    body = iter([data[i : i + step] for i in range(0, len(data), step)]) if chunked else data
    response = client.post("/api/echo", content=body)
    assert response.status_code == 200
    assert response.json() == digest(data)


# --- streaming ----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/flask", "/api"])
def test_streamed_responses_arrive_in_pieces(client: httpx.Client, prefix: str) -> None:
    name = prefix.strip("/")
    arrivals: list[tuple[float, bytes]] = []
    with client.stream("GET", f"{prefix}/stream?chunks=3") as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        for chunk in response.iter_raw():
            arrivals.append((time.monotonic(), chunk))
    body = b"".join(chunk for _, chunk in arrivals).decode()
    assert body == "".join(f"{name} chunk {n} of 3\n" for n in (1, 2, 3))
    assert len(arrivals) > 1
    # The apps pause 0.2 s between lines: a server that buffered the whole body would
    # deliver it at once, and the first piece would not precede the last by that much.
    assert arrivals[0][1].decode().startswith(f"{name} chunk 1 of 3\n")
    assert arrivals[-1][0] - arrivals[0][0] >= 0.3


# --- lifespan and ASGI 2 ------------------------------------------------------------


def test_fastapi_lifespan_state_reaches_every_request(client: httpx.Client) -> None:
    first = client.get("/api/")
    assert first.status_code == 200, first.text
    assert first.json()["service"] == "api"
    started = {client.get("/api/").json()["started_at"] for _ in range(5)}
    assert started == {first.json()["started_at"]}


def test_lifespan_state_belongs_to_its_mount(client: httpx.Client) -> None:
    response = client.get("/probe/scope")
    assert response.status_code == 200, response.text
    scope = response.json()
    assert scope["root_path"] == "/probe"
    assert scope["state"] == {"probe": "started"}


def test_asgi2_app_serves_beside_the_frameworks(client: httpx.Client) -> None:
    response = client.get("/legacy2/anything")
    assert response.status_code == 200
    assert response.text == "asgi2 at /legacy2"


# --- WebSocket ----------------------------------------------------------------------


def ws_url(server: GatewayProcess, path: str) -> str:
    return "ws://" + server.url.removeprefix("http://") + path


def ws_connect(server: GatewayProcess, path: str) -> ClientConnection:
    return connect(ws_url(server, path), proxy=None, open_timeout=30, close_timeout=30)


def test_fastapi_websocket_beside_flask(server: GatewayProcess, client: httpx.Client) -> None:
    """FastAPI's WebSocket under /api, while the Flask app answers on the same server."""
    with ws_connect(server, "/api/ws") as ws:
        assert json.loads(ws.recv(timeout=30)) == {
            "greeting": "echo service at /api/ws",
            "root_path": "/api",
            "url_for": ws_url(server, "/api/ws"),
        }
        ws.send("hello")
        assert ws.recv(timeout=30) == "hello"
        flask = client.get("/flask/hello")
        assert flask.status_code == 200
        assert flask.json()["script_root"] == "/flask"
        ws.send("still open")
        assert ws.recv(timeout=30) == "still open"


def test_websocket_upgrade_to_flask_is_plain_http(server: GatewayProcess) -> None:
    """A WSGI app cannot take a WebSocket: the gateway hands Flask the request as plain
    HTTP, Upgrade field and all. Werkzeug's router reads that field as a WebSocket
    request and refuses it for an HTTP-only route (WebsocketMismatch, a 400): Flask's
    own error page shows that Flask answered, not the gateway."""
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(server, "/flask/hello").close()
    response = refused.value.response
    assert response.status_code == 400
    assert b"The browser (or proxy) sent a request" in response.body
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"


# --- connections, methods, errors ---------------------------------------------------


def client_port(client: httpx.Client) -> int:
    """The client's own port as the server saw it: names the TCP connection used."""
    return int(client.get("/probe/scope").json()["client"][1])


def test_keep_alive_across_mounts(client: httpx.Client) -> None:
    port = client_port(client)
    for _ in range(2):
        flask = client.get("/flask/hello")
        django = client.get("/where/")
        api = client.get("/api/items/1")
        for response in (flask, django, api):
            assert response.status_code == 200
            assert response.headers.get("connection", "").lower() != "close"
        assert client_port(client) == port


# FastAPI answers HEAD on its own API routes with 405; its docs page is a plain Starlette
# route, which accepts HEAD.
@pytest.mark.parametrize("path", ["/flask/hello", "/where/", "/api/docs"])
def test_head_to_each_framework(client: httpx.Client, path: str) -> None:
    response = client.head(path)
    assert response.status_code == 200
    assert response.content == b""
    # The connection is still in step: a body sent after HEAD would corrupt this reply.
    assert client.get("/flask/hello").json()["path"] == "/hello"


def test_wsgi_app_exception_is_a_plain_500(client: httpx.Client) -> None:
    response = client.get("/probe-wsgi/raise")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")
    assert "secret wsgi detail" not in response.text
    assert "Traceback" not in response.text
    # The server and its other mounts carry on.
    assert client.get("/flask/hello").status_code == 200
    assert client.get("/where/").status_code == 200


# --- start-up -----------------------------------------------------------------------


def test_serve_creates_the_demo_database_itself(tmp_path: Path) -> None:
    db_path = tmp_path / "fresh.sqlite3"
    process = GatewayProcess(write_mounts(tmp_path), env=server_env(db_path))
    try:
        process.wait_for_line("serving on", START_DEADLINE_S)
        assert httpx.get(process.url + "/where/", timeout=30).status_code == 200
        with closing(sqlite3.connect(db_path)) as db:
            users = db.execute("SELECT username, is_superuser FROM auth_user").fetchall()
        assert users == [("admin", 1)]
    finally:
        process.stop()
