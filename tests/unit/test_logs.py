"""The logging setup's parts in one process, no server (gateway/logs.py): the access
filter renders entries in the configured format, JSONLines writes one object per record,
and a dictConfig file can name JSONLines (issue 14, point 3)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from gateway.asgi import set_mount_label
from gateway.config.access_format import AccessEntry, compile_format
from gateway.logs import AccessLines, JSONLines


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("gateway.test-logs")
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    log.handlers.clear()
    log.filters.clear()


def stream_to(log: logging.Logger, formatter: logging.Formatter) -> io.StringIO:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    log.addHandler(handler)
    return stream


def entry() -> AccessEntry:
    scope = {
        "type": "http",
        "http_version": "1.1",
        "path": "/api/x",
        "query_string": b"",
        "headers": [],
        "client": ("10.0.0.1", 5000),
    }
    set_mount_label(scope, "/api>canary:next")
    return AccessEntry(scope, "GET", 201, 7, 0.25)


def test_access_lines_render_entries_in_the_format(logger: logging.Logger) -> None:
    stream = stream_to(logger, logging.Formatter("%(message)s"))
    logger.addFilter(AccessLines(compile_format("%(s)s %(b)s %(M)s %(mount)s %(route)s")))
    logger.info(entry())
    logger.info("not an entry: %s", "as it is")
    assert stream.getvalue().splitlines() == [
        "201 7 250 /api canary:next",
        "not an entry: as it is",
    ]


def test_json_lines_are_one_object_each(logger: logging.Logger) -> None:
    stream = stream_to(logger, JSONLines())
    logger.addFilter(AccessLines(compile_format("")))
    logger.info(entry())
    try:
        raise RuntimeError("two\nlines")
    except RuntimeError:
        logger.exception("failed\nhere")
    access, error = (json.loads(line) for line in stream.getvalue().splitlines())
    assert access["message"].endswith("mount=/api>canary:next")
    assert (access["status"], access["bytes"], access["duration_ms"]) == (201, 7, 250.0)
    assert (access["route"], access["client_port"]) == ("canary:next", 5000)
    assert error["level"] == "ERROR" and error["message"] == "failed\nhere"
    assert "RuntimeError: two\nlines" in error["exception"]
    assert "status" not in error


def test_a_dict_config_can_name_json_lines(logger: logging.Logger) -> None:
    stream = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": "gateway.logs.JSONLines"}},
            "handlers": {
                "out": {"class": "logging.StreamHandler", "stream": stream, "formatter": "json"}
            },
            "loggers": {logger.name: {"handlers": ["out"], "level": "INFO"}},
        }
    )
    logger.info("hello")
    assert json.loads(stream.getvalue())["message"] == "hello"
