"""Apps in, ASGI 3 out: loading apps by reference and adapting them to the server.

Everything above this package speaks ASGI 3. `load_app` imports an app from its
"module:attribute" (or "module:factory()") reference, detects or takes its interface,
wraps ASGI 2 apps with asgiref and WSGI apps in a `WSGIAdapter` that owns the mount's
thread pool; `load_static` serves a directory of files (adapters/static.py). This is
the only package that imports asgiref and a2wsgi; it may import only gateway.asgi and
gateway.errors from the gateway (DESIGN §3). The repository keeps it in its own
top-level folder, and it is installed as `gateway.adapters` (gateway/adapters is a link
to the folder): a generic name in site-packages would be shadowed by, or would shadow,
a user's own `adapters` module.
"""

from gateway.adapters.loading import (
    InterfaceMismatch,
    LoadedApp,
    detect_interface,
    import_from_string,
    interface_mismatch,
    load_app,
    load_static,
)
from gateway.adapters.wsgi import WSGIAdapter

__all__ = [
    "InterfaceMismatch",
    "LoadedApp",
    "WSGIAdapter",
    "detect_interface",
    "import_from_string",
    "interface_mismatch",
    "load_app",
    "load_static",
]
