"""The validators of the mount file's values (the settings' declarations in
gateway/config/server_table.py and mount_table.py name which setting uses which).

Rules:
1. A validator takes the raw TOML value and returns the value to store, or raises
   Invalid with just the reason; config adds the file, the table and the key.
2. A TOML boolean is never accepted where a number is expected (bool is an int in
   Python, but `threads = true` is a mistake).
3. Validators are pure: they open no file, import no app and bind nothing.
4. Layer 1: stdlib, gateway.config.bind and gateway.http.forwarded only.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from gateway.config.bind import Bind, parse_bind
from gateway.http.forwarded import ProxyTrust

Check = Callable[[object], Any]
"""A validator: takes the raw TOML value, returns the stored value or raises Invalid."""
T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


class Invalid(ValueError):
    """A validator's complaint: just the reason; the caller adds file, table and key."""


def toml_type(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    return names.get(type(value), "table" if isinstance(value, dict) else "date/time")


def expect(value: object, wanted: type[T], name: str) -> T:
    # bool is a subclass of int in Python, but "threads = true" is a mistake in TOML.
    if not isinstance(value, wanted) or (isinstance(value, bool) and wanted is not bool):
        shown = str(value).lower() if isinstance(value, bool) else repr(value)
        raise Invalid(f"expected {name}, got {toml_type(value)} {shown}")
    return value


def int_at_least(minimum: int) -> Check:
    def check(value: object) -> int:
        number = expect(value, int, "an integer")
        if number < minimum:
            raise Invalid(f"must be >= {minimum}, got {number}")
        return number

    return check


def seconds(*, positive: bool) -> Check:
    def check(value: object) -> float:
        if not isinstance(value, float):  # TOML integers are fine: "timeout = 5"
            value = float(expect(value, int, "a number of seconds"))
        if not math.isfinite(value):
            raise Invalid(f"must be a finite number, got {value}")
        if value < 0 or (positive and value == 0):
            raise Invalid(f"must be {'> 0' if positive else '>= 0'}, got {value}")
        return value

    return check


def boolean(value: object) -> bool:
    return expect(value, bool, "true or false")


def choice(allowed: tuple[str, ...]) -> Check:
    def check(value: object) -> str:
        text = expect(value, str, "a string").lower()
        if text not in allowed:
            raise Invalid(f"must be one of {', '.join(allowed)}; got {value!r}")
        return text

    return check


def member(allowed: tuple[E, ...]) -> Check:
    """`choice` for the members of a StrEnum: the same text in and the same message,
    stored as the member, so that mypy checks every comparison with it."""
    by_text = {str(option): option for option in allowed}
    text_of = choice(tuple(by_text))

    def check(value: object) -> E:
        return by_text[text_of(value)]

    return check


def path_or_empty(value: object) -> str:
    text = expect(value, str, "a string")
    if "\0" in text:
        raise Invalid("must not contain a NUL character")
    return text


def directory(value: object) -> str:
    text = path_or_empty(value)
    if not text:
        raise Invalid('must name a directory, e.g. "staticfiles"')
    return text


def file_mode(value: object) -> int:
    mode = expect(value, int, "an integer (write it in octal: 0o660)")
    if not 0 <= mode <= 0o777:
        raise Invalid(f"must be a permission mode 0o000..0o777, got {oct(mode)}")
    return mode


def trust_list(value: object) -> tuple[str, ...]:
    items = string_list(value)
    try:
        ProxyTrust(items)  # parsed again by each worker; here only checked
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return items


def own_path(example: str) -> Check:
    """A path the gateway answers itself before routing (health, metrics), or "" (off)."""

    def check(value: object) -> str:
        text = expect(value, str, "a string")
        if text == "":
            return text  # off
        path = prefix(text)
        if path == "/":
            raise Invalid(f'must name a path of its own, e.g. "{example}"; "" turns it off')
        return path

    return check


health_path = own_path("/_gateway")
metrics_path = own_path("/_gateway/metrics")


def string_list(value: object) -> tuple[str, ...]:
    wanted = "an array of strings"
    items = tuple(expect(item, str, wanted) for item in expect(value, list, wanted))
    if "" in items:
        raise Invalid("entries must not be empty")
    return items


def binds(value: object) -> tuple[Bind, ...]:
    items = [value] if isinstance(value, str) else value  # a lone string is one address
    try:
        binds = tuple(parse_bind(text) for text in string_list(items))
    except Invalid:
        raise
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    if not binds:
        raise Invalid("at least one bind address is required")
    seen = [str(b) for b in binds]
    for text in seen:
        if seen.count(text) > 1:
            raise Invalid(f"{text} is listed twice")
    return binds


def admin_bind(value: object) -> Bind | None:
    """One address for the admin listener, or "" (off): None."""
    text = expect(value, str, "a string")
    if not text:
        return None
    try:
        return parse_bind(text)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def token(value: object) -> str:
    text = expect(value, str, "a string")
    # It travels in an HTTP field (`authorization: Bearer TOKEN`): visible ASCII only.
    if text and not (text.isascii() and text.isprintable() and " " not in text):
        raise Invalid("must be printable ASCII without spaces (it is sent in a header)")
    return text


def prefix(value: object) -> str:
    value = expect(value, str, "a string")
    if not value.startswith("/"):
        raise Invalid(f"must start with '/', got {value!r}")
    unprintable = not value.isprintable() or any(c.isspace() for c in value)
    if unprintable or "?" in value or "#" in value or "//" in value:
        raise Invalid(f"must be a plain path without '?', '#', '//' or spaces, got {value!r}")
    segments = value.strip("/").split("/")
    if "." in segments or ".." in segments:
        raise Invalid(f"must not contain '.' or '..' segments, got {value!r}")
    # "/api/" and "/api" name the same mount: matching is on segment boundaries anyway.
    return value.rstrip("/") or "/"


def root_path(value: object) -> str:
    """A prefix a proxy strips before forwarding, or "" (none); "/" is none too."""
    text = expect(value, str, "a string")
    if text == "":
        return text
    stripped = prefix(text)
    return "" if stripped == "/" else stripped


def app_reference(value: object) -> str:
    value = expect(value, str, "a string")
    module, sep, attribute = value.partition(":")
    if not (sep and is_dotted_name(module) and is_dotted_name(attribute.removesuffix("()"))):
        raise Invalid(f'must look like "module:attribute" or "module:factory()", got {value!r}')
    return value


def module_or_empty(value: object) -> str:
    """A module by its dotted name ("mysite.gateway_hooks"), or "" for none."""
    text = expect(value, str, "a string")
    if text and not is_dotted_name(text):
        raise Invalid(f'must be a module\'s dotted name, e.g. "mysite.gateway_hooks", got {text!r}')
    return text


# A user or group as the system's databases know it: a name (POSIX's portable filename
# characters, as useradd accepts them) or a numeric id.
_ACCOUNT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?")


def account_or_empty(value: object) -> str:
    """A user or group name, or a numeric id, or "" for none. Whether it exists is
    looked up when the server starts (gateway/process/privileges.py), not here
    (gateway/config/loader.py, rule "config is inert data")."""
    text = expect(value, str, "a string")
    if text and not _ACCOUNT.fullmatch(text):
        raise Invalid(f"must be a user or group name, or a numeric id, got {text!r}")
    return text


def is_dotted_name(text: str) -> bool:
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in text.split("."))


# A mount's name: other mounts' fallback and canary keys name it, and the access log
# shows the route a request took ("/api>fallback:legacy"), so it is a plain identifier
# without the ">", ":" or spaces that would make that field ambiguous. 64 characters
# leave room for "billing-api-v2-canary" three times over and still fit a log column.
MAX_MOUNT_NAME_CHARS = 64
_MOUNT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
# A field name or cookie name: an RFC 9110 §5.6.2 token (RFC 6265 §4.1.1 cookie-name).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
STICKY_KINDS = ("none", "client", "cookie:NAME", "header:NAME")


def mount_name(value: object) -> str:
    text = expect(value, str, "a string")
    if not _MOUNT_NAME.fullmatch(text) or len(text) > MAX_MOUNT_NAME_CHARS:
        raise Invalid(
            "must be a name of letters, digits, '_' and '-' that starts with a letter, "
            f"at most {MAX_MOUNT_NAME_CHARS} characters; got {value!r}"
        )
    return text


def status_list(value: object) -> tuple[int, ...]:
    wanted = "an array of HTTP status codes"
    statuses = tuple(expect(item, int, wanted) for item in expect(value, list, wanted))
    if not statuses:
        raise Invalid("must list at least one status")
    for status in statuses:
        if not 100 <= status <= 599:
            raise Invalid(f"{status} is not an HTTP status code (100-599)")
    return tuple(sorted(set(statuses)))


def percent(value: object) -> float:
    if not isinstance(value, float):  # TOML integers are fine: "canary_percent = 10"
        value = float(expect(value, int, "a number from 0 to 100"))
    if not 0 <= value <= 100:  # NaN fails this too
        raise Invalid(f"must be a number from 0 to 100, got {value}")
    return value


def method_list(value: object) -> tuple[str, ...]:
    """Request methods: RFC 9110 §9.1 tokens. Methods are case-sensitive, but every
    standard one is upper-case, so "get" in the file can only mean GET."""
    wanted = "an array of request methods"
    methods = tuple(expect(item, str, wanted) for item in expect(value, list, wanted))
    if not methods:
        raise Invalid("must list at least one method")
    for method in methods:
        if not _TOKEN.fullmatch(method):
            raise Invalid(f"{method!r} is not a request method")
    return tuple(dict.fromkeys(method.upper() for method in methods))


def field_name_or_empty(value: object) -> str:
    """A request header's name, lower-cased as ASGI gives them; "" for none."""
    text = expect(value, str, "a string")
    if text and not _TOKEN.fullmatch(text):
        raise Invalid(f"must be a header name (letters, digits, '-'), got {value!r}")
    return text.lower()


def field_name_list(value: object) -> tuple[str, ...]:
    """Request header names, lower-cased as ASGI gives them; [] for none."""
    wanted = "an array of header names"
    names = tuple(expect(item, str, wanted) for item in expect(value, list, wanted))
    for name in names:
        if not _TOKEN.fullmatch(name):
            raise Invalid(f"{name!r} is not a header name (letters, digits, '-')")
    # Field names are case-insensitive (RFC 9110 §5.1).
    return tuple(dict.fromkeys(name.lower() for name in names))


def sticky_key(value: object) -> str:
    text = expect(value, str, "a string")
    kind, colon, name = text.partition(":")
    if (not colon and kind in ("none", "client")) or (
        colon and kind in ("cookie", "header") and _TOKEN.fullmatch(name)
    ):
        # Field names are case-insensitive (RFC 9110 §5.1); cookie names are not.
        return text.lower() if kind == "header" else text
    raise Invalid(f"must be one of {', '.join(STICKY_KINDS)}; got {value!r}")
