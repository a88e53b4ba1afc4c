"""A legacy Flask app, served by the gateway at /flask over WSGI.

gateway.toml loads it with `app = "flask_site:create_app()"`: the gateway calls the
factory once and serves the app it returns.

The routes below are written without the prefix. The gateway passes SCRIPT_NAME="/flask"
and PATH_INFO="/urls", so Flask routes on "/urls" while url_for() and redirects build
"/flask/..." URLs.
"""

import hashlib
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, jsonify, redirect, request, url_for

site = Blueprint("site", __name__)

STREAM_CHUNKS = 5
# A pause between chunks only so that `curl -N` shows them arriving one by one.
STREAM_PAUSE_S = 0.2


def create_app() -> Flask:
    """The app factory the mount file names."""
    app = Flask(__name__)
    app.register_blueprint(site)
    return app


@site.get("/")
def index() -> str:
    return (
        "<h1>The legacy Flask app</h1>\n"
        f'<p>JSON: <a href="{url_for("site.hello")}">{url_for("site.hello")}</a></p>\n'
        f'<p>url_for: <a href="{url_for("site.urls")}">{url_for("site.urls")}</a></p>\n'
    )


@site.get("/hello")
def hello() -> Response:
    return jsonify(
        message="hello from Flask",
        script_root=request.script_root,  # SCRIPT_NAME: the mount prefix
        path=request.path,  # PATH_INFO: the rest, what Flask routes on
    )


@site.get("/urls")
def urls() -> Response:
    """URLs that Flask builds: every one carries the mount prefix."""
    return jsonify(
        index=url_for("site.index"),
        hello=url_for("site.hello"),
        echo=url_for("site.echo"),
        stream=url_for("site.stream", chunks=3),
        index_external=url_for("site.index", _external=True),
    )


@site.get("/old-home")
def old_home() -> Response:
    """A moved page: the redirect's Location carries the prefix too."""
    return redirect(url_for("site.index"), code=301)


@site.post("/echo")
def echo() -> Response:
    """Length and SHA-256 of the request body, to check that uploads arrive whole.

    A chunked upload has no Content-Length; Flask reads it to the end only because the
    gateway marks the body as terminated (environ["wsgi.input_terminated"]).
    """
    body = request.get_data()
    return jsonify(length=len(body), sha256=hashlib.sha256(body).hexdigest())


@site.get("/stream")
def stream() -> Response:
    """A body made by a generator: the gateway sends each chunk as it is yielded."""
    chunks = request.args.get("chunks", STREAM_CHUNKS, type=int)
    return Response(count_lines(chunks), mimetype="text/plain")


def count_lines(total: int) -> Iterator[str]:
    for number in range(1, total + 1):
        yield f"flask chunk {number} of {total}\n"
        if number < total:
            time.sleep(STREAM_PAUSE_S)
