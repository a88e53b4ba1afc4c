"""The exception tree. Each error knows the reply it implies.

Rules:
1. Requests the gateway answers itself (`HTTPError`: `ProtocolError` and its children
   when the peer is at fault, `RequestTimeout` when it is too slow, `ServiceUnavailable`
   when a limit of ours is reached) carry `status` and `headers`, the reply the I/O
   layer sends before it closes the connection. The I/O layer never guesses a status.
2. Errors that stop the process carry `exit_status` (DESIGN §1): 1 for configuration and
   usage, 3 for an app that fails to load or whose lifespan startup fails.
3. Third-party exceptions (h11, wsproto, a2wsgi) are translated into these where the
   library is wrapped, never further up.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error this package raises on purpose."""

    exit_status = 1


class ConfigError(GatewayError):
    """The mount file (or a command-line override) is invalid.

    The message names the file, the table and the key, so a user can go straight to it.
    """

    exit_status = 1

    def __init__(self, file: str, table: str, key: str | None, reason: str) -> None:
        self.file = file
        self.table = table
        self.key = key
        self.reason = reason
        where = f"[{table}]" if key is None else f"[{table}] {key}"
        super().__init__(f"{file}: {where}: {reason}")


class StartupError(GatewayError):
    """An app could not be imported, or its lifespan startup failed: exit status 3."""

    exit_status = 3


class AppLoadError(StartupError):
    """Importing or building an app from its "module:attribute" reference failed."""


class LifespanError(StartupError):
    """A mount's lifespan startup failed (or it signalled failure)."""


class HTTPError(GatewayError):
    """A request the gateway answers itself, in place of the app's reply: `status` and
    `headers` (besides the connection's own `date` and `server`) are that reply, whose
    body is the status's reason phrase (gateway/asgi.py `plain_reply`)."""

    status = 500
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status


class ProtocolError(HTTPError):
    """The peer sent something we cannot serve. `status` is the reply it implies."""

    status = 400


class BadRequest(ProtocolError):
    status = 400


class RequestBodyTooLarge(ProtocolError):
    status = 413


class RequestTargetTooLong(ProtocolError):
    status = 414


class RequestHeadersTooLarge(ProtocolError):
    status = 431


class MethodNotImplemented(ProtocolError):
    status = 501


class VersionNotSupported(ProtocolError):
    status = 505


class RequestTimeout(HTTPError):
    """The peer did not send its request head (`header_timeout`) or the next piece of its
    body (`body_timeout`) in time: 408 (RFC 9110 §15.5.9), then the connection closes."""

    status = 408


# Retry-After on a 503 (RFC 9110 §10.2.3): a full pool queue or concurrency limit clears
# as requests finish, within a second for typical web requests; a longer hint would leave
# capacity idle, and clients that honour it retry no sooner than this anyway.
RETRY_AFTER_S = 1


class ServiceUnavailable(HTTPError):
    """A limit of ours is reached (`limit_concurrency`, a WSGI mount's `max_queue`): 503
    at once, without the app, and a hint to retry (RFC 9110 §15.6.4)."""

    status = 503
    headers = ((b"retry-after", str(RETRY_AFTER_S).encode("ascii")),)


class ClientDisconnected(OSError):
    """Raised by an ASGI `send` after the client has gone (ASGI HTTP spec 2.4).

    A subclass of OSError, as the spec asks, so frameworks that already catch OSError on
    send (Starlette) stop cleanly. The connection layer never logs it as an app failure.
    """


class AppProtocolError(GatewayError):
    """An app's ASGI messages break the ASGI spec or HTTP (RFC 9112) rules.

    Treated like any app failure: a 500 if the response has not started, else the
    connection closes.
    """
