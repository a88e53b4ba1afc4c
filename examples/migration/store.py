"""The site's data, which the legacy and the new code share, as they would share a database.

Here it is a few dicts in memory, so that the example runs with nothing to set up. With
`workers = 1` every app in the mount file sees the same copy; with more workers each
worker would have its own (a real site keeps this in its database).

Both apps answer the same JSON for the same data: that sameness is what fallback,
canary and shadow rely on while the routes move one by one.
"""

import threading
from typing import Any

USERS: dict[int, dict[str, Any]] = {
    1: {"id": 1, "name": "Ada", "email": "ada@example.com"},
    2: {"id": 2, "name": "Grace", "email": "grace@example.com"},
    3: {"id": 3, "name": "Edsger", "email": "edsger@example.com"},
}

PRODUCTS: dict[int, dict[str, Any]] = {
    1: {"id": 1, "name": "Desk lamp", "price": "39.00"},
    2: {"id": 2, "name": "Lamp shade", "price": "15.00"},
    3: {"id": 3, "name": "Oak desk", "price": "420.00"},
    4: {"id": 4, "name": "Standing desk", "price": "610.00"},
    5: {"id": 5, "name": "Desk chair", "price": "180.00"},
}

ORDERS: dict[int, dict[str, Any]] = {
    1001: {"id": 1001, "user_id": 1, "product_ids": [1, 2]},
    1002: {"id": 1002, "user_id": 2, "product_ids": [3]},
}

# The legacy Flask apps run in thread pools: two POSTs at once must not take one id.
_orders_lock = threading.Lock()


def add_order(user_id: int, product_ids: list[int]) -> dict[str, Any]:
    """Store a new order under the next free id and return it."""
    with _orders_lock:
        order = {"id": max(ORDERS) + 1, "user_id": user_id, "product_ids": product_ids}
        ORDERS[order["id"]] = order
    return order


def orders_of(user_id: int) -> list[dict[str, Any]]:
    return [order for order in ORDERS.values() if order["user_id"] == user_id]
