"""The process's logging, set up once before serving: the error log, the access log,
their format (text or JSON lines), or an operator's own logging.config file.

Rules:
1. The loggers' names are the interface, whoever configures them: `gateway` (and under
   it `gateway.error`, `gateway.server`, `gateway.supervisor`, ...) for the error log,
   `gateway.access` for the access log. A --log-config file configures those names.
2. Without a --log-config file, the error log goes to stderr (or `log_file`), the access
   log to stdout (or `access_log_file`); files are appended to, and reopened on SIGUSR1
   (`reopen_log_files`, which every serving process calls). With one, it replaces these
   handlers, as uvicorn's does.
3. Access lines are rendered by AccessLines, a filter on the `gateway.access` logger
   itself, so `access_log_format` applies whichever handlers and formatters a --log-config
   file gives it. The format is parsed once, here (gateway/config/access_format.py,
   rule "a format is parsed once").
4. JSON lines with `log_format = "json"`: each line is one JSON object (JSONLines) with
   `time`, `level`, `logger` and `message`, and an access line's fields beside them; a
   traceback is a field, so a line never spans two.
5. A --log-config file that cannot be read or applied is a ConfigError naming the
   setting: one line, exit 1, before anything binds.
"""

from __future__ import annotations

import configparser
import json
import logging
import logging.config
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from gateway.config.access_format import AccessEntry, AccessFormat, compile_format, fields
from gateway.config.loader import Config
from gateway.errors import ConfigError

TEXT_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
ERROR_LOGGER = "gateway"
ACCESS_LOGGER = "gateway.access"
# What logging.config raises for a file it cannot apply: ValueError for most (a bad
# handler class, a bad level), the others for a malformed INI file or a factory ("()")
# that cannot be imported or called with the given arguments.
CONFIG_ERRORS = (ValueError, TypeError, KeyError, AttributeError, ImportError)


def configure_logging(config: Config) -> None:
    """Our own handlers, or the operator's file; access lines either way (rules "without a
    --log-config file", "access lines are rendered by AccessLines" and "JSON lines")."""
    server = config.server
    if server.log_config:
        apply_log_config(config)
    else:
        _configure_handlers(config)
    access = logging.getLogger(ACCESS_LOGGER)
    # Configured more than once in one process (a test, say): one filter, the last.
    for old in [f for f in access.filters if isinstance(f, AccessLines)]:
        access.removeFilter(old)
    access.addFilter(AccessLines(compile_format(server.access_log_format)))


def _configure_handlers(config: Config) -> None:
    server = config.server
    json_lines = server.log_format == "json"
    errors = _log_handler(config, "log_file", sys.stderr)
    errors.setFormatter(JSONLines() if json_lines else logging.Formatter(TEXT_FORMAT))
    error_logger = logging.getLogger(ERROR_LOGGER)
    error_logger.handlers[:] = [errors]
    error_logger.setLevel(server.log_level.upper())
    access = logging.getLogger(ACCESS_LOGGER)
    access_handler = _log_handler(config, "access_log_file", sys.stdout)
    access_handler.setFormatter(JSONLines() if json_lines else logging.Formatter("%(message)s"))
    access.handlers[:] = [access_handler]
    access.propagate = False
    access.setLevel(logging.INFO if server.access_log else logging.CRITICAL + 1)


def _log_handler(config: Config, setting: str, stream: TextIO) -> logging.Handler:
    path: str = getattr(config.server, setting)
    if not path:
        return logging.StreamHandler(stream)
    try:
        return logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        reason = f"cannot open {path!r}: {exc.strerror or exc}"
        raise ConfigError(config.path, "server", setting, reason) from exc


def apply_log_config(config: Config) -> None:
    """A dictConfig file (.json, .yaml, .yml) or a fileConfig (INI) file
    (rule "a --log-config file that cannot be read")."""
    path = config.server.log_config
    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                _apply_dict(json.load(file))
        elif path.endswith((".yaml", ".yml")):
            _apply_dict(_read_yaml(config, path))
        else:
            _read_ini(path)
            # Loggers that exist already (ours, made at import) stay enabled unless the
            # file names them: the same default the dictConfig files get (_apply_dict).
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except ConfigError:
        raise
    except (OSError, configparser.Error, *CONFIG_ERRORS) as exc:
        reason = f"cannot apply {path!r}: {_reason(exc)}"
        raise ConfigError(config.path, "server", "log_config", reason) from exc


def _read_ini(path: str) -> None:
    """fileConfig reports a missing file as a bare KeyError on "formatters"; open it
    first so that the error says what is wrong."""
    with open(path, encoding="utf-8") as file:
        file.read(1)


def _apply_dict(settings: object) -> None:
    if not isinstance(settings, dict):
        raise ValueError("a dictConfig file holds one object (a mapping) at its top")
    # dictConfig disables every logger that exists and is not named in the file unless
    # told otherwise; ours exist from import time, so a file that configures only the
    # root logger would silence the gateway. A file may still say true.
    settings.setdefault("disable_existing_loggers", False)
    logging.config.dictConfig(settings)


def _read_yaml(config: Config, path: str) -> object:
    try:
        import yaml  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as exc:
        reason = f"{path!r} is YAML, which needs PyYAML (pip install pyyaml), or use .json"
        raise ConfigError(config.path, "server", "log_config", reason) from exc
    with open(path, encoding="utf-8") as file:
        try:
            return yaml.safe_load(file)
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML: {exc}") from exc


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    # One line, whatever the library wrote (rule "a --log-config file that cannot be read").
    return " ".join(text.split())


class AccessLines(logging.Filter):
    """Renders each access entry in the configured format as the record's message,
    keeping the entry for a JSON formatter (rule "access lines are rendered by
    AccessLines"). Records that are not entries pass as they are."""

    def __init__(self, access_format: AccessFormat) -> None:
        super().__init__()
        self._format = access_format

    def filter(self, record: logging.LogRecord) -> bool:
        entry = record.msg
        if isinstance(entry, AccessEntry):
            record.msg = self._format.render(entry)
            record.args = None
            record.access_entry = entry
        return True


class JSONLines(logging.Formatter):
    """One JSON object per record (rule "JSON lines"). Usable from a --log-config file too
    ("()": "gateway.logs.JSONLines")."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        entry = getattr(record, "access_entry", None)
        if isinstance(entry, AccessEntry):
            line.update(fields(entry))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)  # ASCII: safe whatever the stream's encoding


def reopen_log_files() -> None:
    """SIGUSR1: reopen every log file, after logrotate moved it away
    (rule "without a --log-config file")."""
    for name in (ERROR_LOGGER, ACCESS_LOGGER):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.FileHandler):
                stream = open(handler.baseFilename, "a", encoding=handler.encoding)  # noqa: SIM115
                old = handler.setStream(stream)
                if old is not None:
                    old.close()
