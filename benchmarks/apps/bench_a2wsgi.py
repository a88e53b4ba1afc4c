"""The WSGI benchmark apps wrapped as ASGI apps with a2wsgi, for the `uvicorn-a2wsgi` peer.

This is the "WSGIMiddleware under an ASGI server" setup the gateway replaces. The pool
has WSGI_THREADS threads, the same size as the gateway's WSGI mounts and gunicorn's
--threads in this benchmark.
"""

from __future__ import annotations

import bench_flask
import bench_wsgi
from a2wsgi import WSGIMiddleware

WSGI_THREADS = 10

hello = WSGIMiddleware(bench_wsgi.hello, workers=WSGI_THREADS)
big = WSGIMiddleware(bench_wsgi.big, workers=WSGI_THREADS)
echo = WSGIMiddleware(bench_wsgi.echo, workers=WSGI_THREADS)
flask_app = WSGIMiddleware(bench_flask.app, workers=WSGI_THREADS)
