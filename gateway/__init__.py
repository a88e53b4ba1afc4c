"""gateway: one server for a team's WSGI and ASGI apps, mounted side by side by URL prefix."""

__version__ = "0.1.0"
