"""The new code: FastAPI, over ASGI, one app per section, as it takes over from legacy.py.

- `api` has taken over two routes of the legacy JSON API, GET /users/{id} and
  GET /orders/{id}. Any other path is a 404 (FastAPI's own), on which the gateway
  replays the request to the legacy API (`fallback` in gateway.toml).
- `shop` is the rewritten shop, complete: the gateway sends it 10% of the shop's users
  (`canary`).
- `search` is the rewritten product search: the gateway sends it a copy of the search
  requests and compares its answers with legacy's (`shadow`); its answers never reach a
  client. It matches the query at the start of a word, where legacy matches it anywhere
  in the name: a change of behaviour that the comparison brings to light (`?q=hair`
  finds "Desk chair" in legacy, nothing here). Its product route answers as legacy's
  does: the route the migration page calls "ready to cut over".

The routes are relative to the prefix, as in legacy.py: the gateway passes
root_path = the routing mount's prefix, and url_for() builds URLs with it.

Every answer carries `x-served-by: new (FastAPI)`, only so that the example shows which
side answered.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any

import store
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

SERVED_BY = "new (FastAPI)"


def _fastapi_app(title: str) -> FastAPI:
    app = FastAPI(title=title)

    @app.middleware("http")
    async def served_by(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["x-served-by"] = SERVED_BY
        return response

    return app


# --- /api: two routes taken over; the rest falls back to legacy.api ------------------

api = _fastapi_app("API (new)")


@api.get("/users/{user_id}")
async def user(user_id: int) -> dict[str, Any]:
    if user_id not in store.USERS:
        raise HTTPException(404)  # the fallback answers it too: legacy's own 404
    return store.USERS[user_id]


@api.get("/orders/{order_id}")
async def order(order_id: int) -> dict[str, Any]:
    if order_id not in store.ORDERS:
        raise HTTPException(404)
    return store.ORDERS[order_id]


# --- the canary of /shop: the rewritten shop, all of it ------------------------------

shop = _fastapi_app("Shop (new)")


@shop.get("/", response_class=HTMLResponse)
async def catalogue(request: Request) -> str:
    items = "".join(
        f'<li><a href="{request.url_for("product", product_id=p["id"]).path}">'
        f"{p['name']}</a> {p['price']} EUR</li>"
        for p in store.PRODUCTS.values()
    )
    return f"<h1>Shop</h1><p>Welcome to the new shop.</p><ul>{items}</ul>\n"


@shop.get("/products/{product_id}", response_class=HTMLResponse)
async def product(product_id: int, request: Request) -> str:
    if product_id not in store.PRODUCTS:
        raise HTTPException(404)
    item = store.PRODUCTS[product_id]
    back = request.url_for("catalogue").path
    return (
        f'<h1>{item["name"]}</h1><p class="price">{item["price"]} EUR</p>'
        f'<a href="{back}">back to the shop</a>\n'
    )


# --- the shadow of /search: the rewritten search ---------------------------------------

search = _fastapi_app("Search (new)")


@search.get("/products")
async def search_products(q: str = "") -> dict[str, Any]:
    """Products with a word in their name that starts with the query, in any case."""
    started = time.perf_counter()
    query = q.lower()
    results = [
        {"id": p["id"], "name": p["name"]}
        for p in store.PRODUCTS.values()
        if any(word.startswith(query) for word in p["name"].lower().split())
    ]
    took_ms = round((time.perf_counter() - started) * 1000, 3)
    return {"query": query, "results": results, "took_ms": took_ms}


@search.get("/products/{product_id}")
async def search_product(product_id: int) -> dict[str, Any]:
    """One product, as a search result links to it: the same answer as legacy's."""
    if product_id not in store.PRODUCTS:
        raise HTTPException(404)
    return store.PRODUCTS[product_id]
