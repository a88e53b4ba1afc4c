"""Route templates and the RouteBook (gateway/migration/routes.py), with the scopes
FastAPI and Starlette really leave behind (probed with the installed versions: both put
the matched route in scope["route"]; a Mount inside the app grows root_path)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from gateway.asgi import ASGIApp, Message, Scope
from gateway.migration.routes import (
    ADMIT_AFTER,
    CANDIDATES_PER_ROUTE,
    MAX_SEGMENTS,
    OTHER,
    ROUTE_KEY,
    RouteBook,
    path_template,
)

UUID = "123e4567-e89b-12d3-a456-426614174000"


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/", "/"),
        ("", "/"),
        ("/users/42", "/users/{int}"),
        ("/users/42/orders/7", "/users/{int}/orders/{int}"),
        (f"/items/{UUID}", "/items/{uuid}"),
        (f"/items/{UUID.replace('-', '')}", "/items/{uuid}"),
        ("/commits/0123456789abcdef0123", "/commits/{hex}"),
        ("/words/cafe", "/words/cafe"),  # short hex is a word
        ("/t/V1StGXR8_Z5jdHi6B-myT", "/t/{token}"),
        ("/blog/a-rather-long-slug-with-words", "/blog/a-rather-long-slug-with-words"),
        ("/f/" + "x" * 65, "/f/{long}"),
        ("/users/", "/users/"),
        ("/" + "/".join("abcdefghij"), "/a/b/c/d/e/f/g/h/{rest}"),
    ],
)
def test_path_template(path: str, template: str) -> None:
    assert path_template(path) == template


def test_segments_past_the_bound_fold_into_rest() -> None:
    template = path_template("/a" * (MAX_SEGMENTS + 50))
    assert template.count("/") == MAX_SEGMENTS + 1
    assert template.endswith("/{rest}")


def scope(path: str, root_path: str = "/api", method: str = "GET") -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
    }


def served(app: ASGIApp, request: Scope) -> Scope:
    """`request` once `app` has answered it (the app may add to it)."""

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    async def run() -> None:
        await app(request, receive, send)

    asyncio.run(run())
    return request


fastapi_app = FastAPI()
inner_app = FastAPI()


@fastapi_app.get("/users/{user_id}")
async def user(user_id: int) -> dict[str, Any]:
    return {"id": user_id}


@inner_app.get("/things/{n}")
async def thing(n: int) -> dict[str, Any]:
    return {"n": n}


fastapi_app.mount("/inner", inner_app)


async def starlette_user(request: Request) -> PlainTextResponse:
    return PlainTextResponse("x")


starlette_app = Starlette(routes=[Route("/users/{uid:int}", starlette_user)])


def test_fastapi_s_template_is_the_route() -> None:
    book = RouteBook(10, "/api")
    assert book.route_of(served(fastapi_app, scope("/api/users/3"))) == "/users/{user_id}"


def test_starlette_s_template_leaves_the_convertor_out() -> None:
    book = RouteBook(10, "")
    assert book.route_of(served(starlette_app, scope("/users/3", ""))) == "/users/{uid}"


def test_a_mount_inside_the_app_is_put_in_front() -> None:
    book = RouteBook(10, "/api")
    assert book.route_of(served(fastapi_app, scope("/api/inner/things/9"))) == ("/inner/things/{n}")


def test_the_route_is_kept_on_the_scope_and_read_back() -> None:
    book = RouteBook(10, "/api")
    request = served(fastapi_app, scope("/api/users/3"))
    assert book.route_of(request) == "/users/{user_id}"
    request["route"] = None  # a second ask reads the memo, not the scope again
    assert request[ROUTE_KEY] == "/users/{user_id}"
    assert book.route_of(request) == "/users/{user_id}"


def test_a_path_template_is_admitted_on_its_second_sighting() -> None:
    book = RouteBook(10, "/api")
    first = [book.route_of(scope(f"/api/orders/{n}")) for n in range(ADMIT_AFTER + 2)]
    assert first == [OTHER] * (ADMIT_AFTER - 1) + ["/orders/{int}"] * 3


def test_one_off_paths_take_no_slot() -> None:
    book = RouteBook(3, "/api")
    for n in range(1000):
        assert book.route_of(scope(f"/api/scan-{n}.php")) == OTHER
    assert book.routes == frozenset()
    assert book.route_of(scope("/api/real")) == OTHER
    assert book.route_of(scope("/api/real")) == "/real"


def test_the_candidates_table_stays_bounded() -> None:
    book = RouteBook(2, "/api")
    for n in range(10 * CANDIDATES_PER_ROUTE * 2):
        book.route_of(scope(f"/api/probe-{n}"))
        assert len(book._candidates) <= CANDIDATES_PER_ROUTE * 2


def test_at_most_limit_routes_then_other() -> None:
    book = RouteBook(2, "/api")
    for name in ("a", "b", "c"):
        for _ in range(ADMIT_AFTER):
            book.route_of(scope(f"/api/{name}"))
    assert book.routes == {"/a", "/b"}
    assert book.route_of(scope("/api/c")) == OTHER
    assert book.route_of(scope("/api/a")) == "/a"


def test_a_framework_template_is_admitted_at_once_within_the_limit() -> None:
    book = RouteBook(1, "/api")
    assert book.route_of(served(fastapi_app, scope("/api/users/1"))) == "/users/{user_id}"
    assert book.route_of(served(fastapi_app, scope("/api/inner/things/1"))) == OTHER


def test_the_other_side_s_path_counts_under_the_learned_template() -> None:
    book = RouteBook(10, "/api")
    book.route_of(served(fastapi_app, scope("/api/users/3")))
    # The legacy app tells nothing: the same kind of path is known by its alias.
    assert book.route_of(scope("/api/users/77")) == "/users/{user_id}"


def test_aliases_are_bounded() -> None:
    book = RouteBook(2, "")

    class Found:
        def __init__(self, path: str) -> None:
            self.path_format = path

    for n in range(20):
        request = scope(f"/r{n}/1", "")
        request["route"] = Found(f"/r{n}/{{id}}")
        book.route_of(request)
    assert len(book._aliases) <= 2
