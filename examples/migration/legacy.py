"""The legacy site: Flask, over WSGI, one Flask app per section of the site.

Before the migration these three apps ran behind one WSGI server, each at its prefix:
`api` at /api (the JSON API), `shop` at /shop (HTML pages), `search` at /search. Their
routes are written without the prefix: the gateway passes SCRIPT_NAME = the prefix and
PATH_INFO = the rest, so url_for() and the Location headers below carry the prefix.

That holds when an app is reached as another mount's target too. In gateway.toml, `api`
is no longer mounted at /api: the new FastAPI app is, and `api` answers what the new app
does not have (fallback). It still sees SCRIPT_NAME = "/api", so nothing here changed
for the migration.

Every answer carries `x-served-by: legacy (Flask)`, only so that the example shows
which side answered; the access log says it too (`mount=/api>fallback:legacy-api`).
"""

import time

import store
from flask import Flask, Response, abort, jsonify, request, url_for
from flask.typing import ResponseReturnValue

SERVED_BY = "legacy (Flask)"


def _flask_app(name: str) -> Flask:
    app = Flask(name)
    # Keys in the order the data has them, as the new apps (FastAPI) write them.
    app.json.sort_keys = False

    @app.after_request
    def served_by(response: Response) -> Response:
        response.headers["x-served-by"] = SERVED_BY
        return response

    return app


# --- /api: the JSON API --------------------------------------------------------------

api = _flask_app("legacy.api")


@api.get("/users")
def users() -> ResponseReturnValue:
    return jsonify(list(store.USERS.values()))


@api.get("/users/<int:user_id>")
def user(user_id: int) -> ResponseReturnValue:
    if user_id not in store.USERS:
        abort(404)
    return jsonify(store.USERS[user_id])


@api.get("/users/<int:user_id>/orders")
def user_orders(user_id: int) -> ResponseReturnValue:
    if user_id not in store.USERS:
        abort(404)
    return jsonify(store.orders_of(user_id))


@api.get("/orders/<int:order_id>")
def order(order_id: int) -> ResponseReturnValue:
    if order_id not in store.ORDERS:
        abort(404)
    return jsonify(store.ORDERS[order_id])


@api.post("/orders")
def create_order() -> ResponseReturnValue:
    data = request.get_json(silent=True) or {}
    if data.get("user_id") not in store.USERS:
        return jsonify(error="user_id: no such user"), 422
    created = store.add_order(data["user_id"], list(data.get("product_ids", [])))
    # url_for() under SCRIPT_NAME = "/api": "/api/orders/1003".
    return jsonify(created), 201, {"location": url_for("order", order_id=created["id"])}


@api.errorhandler(404)
def not_found(error: Exception) -> ResponseReturnValue:
    return jsonify(error="not found"), 404


# --- /shop: HTML pages -----------------------------------------------------------------

shop = _flask_app("legacy.shop")


@shop.get("/")
def catalogue() -> str:
    items = "".join(
        f'<li><a href="{url_for("product", product_id=p["id"])}">{p["name"]}</a></li>'
        for p in store.PRODUCTS.values()
    )
    return f"<h1>Shop</h1><ul>{items}</ul>\n"


@shop.get("/products/<int:product_id>")
def product(product_id: int) -> str:
    if product_id not in store.PRODUCTS:
        abort(404)
    item = store.PRODUCTS[product_id]
    back = url_for("catalogue")
    return f'<h1>{item["name"]}</h1><p>{item["price"]} EUR</p><a href="{back}">shop</a>\n'


# --- /search: product search, JSON -----------------------------------------------------

search = _flask_app("legacy.search")


@search.get("/products")
def search_products() -> ResponseReturnValue:
    """Products whose name contains the query, anywhere, in any case."""
    started = time.perf_counter()
    query = request.args.get("q", "").lower()
    results = [
        {"id": p["id"], "name": p["name"]}
        for p in store.PRODUCTS.values()
        if query in p["name"].lower()
    ]
    took_ms = round((time.perf_counter() - started) * 1000, 3)
    return jsonify(query=query, results=results, took_ms=took_ms)


@search.get("/products/<int:product_id>")
def search_product(product_id: int) -> ResponseReturnValue:
    """One product, as a search result links to it."""
    if product_id not in store.PRODUCTS:
        abort(404)
    return jsonify(store.PRODUCTS[product_id])
