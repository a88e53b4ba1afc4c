"""Finding an app from its reference and serving it as an ASGI 3 app.

Rules:
1. A reference is "module:attribute" (the attribute may be dotted) or
   "module:factory()", which calls the factory with no arguments. Nothing else is
   evaluated.
2. Every failure is an AppLoadError that names the reference and the cause, chained from
   the original: the module is not found, importing it raised (an ImportError of its
   own included, told apart from "not found"), a SyntaxError in it, the attribute is
   missing, the factory raised.
3. Interface detection: "auto" detects the interface from the callable
   (detect_interface) and refuses to guess when the callable does not say. An explicit
   interface wins, unless the callable certainly cannot be called that way
   (`interface_mismatch`: a coroutine function declared "wsgi", a function of (environ,
   start_response) declared "asgi"): then the load fails, naming the interface the app
   has and the fix, rather than every request failing with a TypeError. When the
   callable's signature is unsure, the declared interface is kept.
4. ASGI 2 (double-callable) apps are wrapped by asgiref into ASGI 3; WSGI apps get a
   WSGIAdapter with the mount's own thread pool. LoadedApp.app is always ASGI 3.
5. A `static` mount loads no code: `load_static` checks its directory (a missing one is
   an AppLoadError, as a missing module is) and serves it with adapters/static.py.
6. A missing attribute names the module's file and suggests close names in the module
   ("did you mean 'app'?"), since a typo there is the likeliest cause.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, cast

from a2wsgi.wsgi_typing import WSGIApp
from asgiref import compatibility
from asgiref.sync import iscoroutinefunction

from gateway.adapters.static import StaticFiles
from gateway.adapters.wsgi import WSGIAdapter
from gateway.asgi import DECLARED_INTERFACES, ASGIApp, Interface
from gateway.errors import AppLoadError

# An app's interface once known: what a declared or detected one resolves to.
Resolved = Literal[Interface.ASGI, Interface.WSGI]

# asgiref ships these untyped; give them their types once, here.
_is_double_callable: Callable[[object], bool] = compatibility.is_double_callable
_single_callable: Callable[[object], ASGIApp] = compatibility.guarantee_single_callable

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class InterfaceMismatch(AppLoadError):
    """The mount's declared interface is not the one the app certainly has
    (rule "interface detection")."""


@dataclass
class LoadedApp:
    """An app ready to mount: `app` is ASGI 3 whatever the app was written for."""

    app: ASGIApp
    interface: Interface  # resolved: ASGI or WSGI, or STATIC (files, no code)
    reference: str  # the app reference, or a static mount's directory
    pool_size: int | None  # the WSGI pool's size; None for ASGI
    supports_lifespan: bool  # False for WSGI: the server answers lifespan for them
    pool: WSGIAdapter | None = None  # a WSGI app's adapter, which owns its thread pool

    def close(self) -> None:
        """Shut a WSGI app's pool down (without waiting); idempotent, no-op for ASGI."""
        if self.pool is not None:
            self.pool.close()


def load_app(
    ref: str,
    interface: Interface,
    threads: int | None,
    name: str,
    max_queue: int | None = None,
    body_buffer_bytes: int = 0,
) -> LoadedApp:
    """Import `ref` and make it an ASGI 3 app; `threads` sizes a WSGI app's pool (None
    on a mount declared ASGI, which has none), `max_queue` bounds the requests waiting
    for it (None: no bound), and a request body up to `body_buffer_bytes` is read before
    the call takes a thread (adapters/wsgi.py)."""
    if interface not in DECLARED_INTERFACES:
        allowed = tuple(str(declared) for declared in DECLARED_INTERFACES)
        raise AppLoadError(f"cannot load {ref!r}: interface must be one of {allowed}")
    obj = import_from_string(ref)
    if not callable(obj):
        raise AppLoadError(f"cannot load {ref!r}: it is a {type(obj).__name__}, not an app")
    kind = _resolve_interface(ref, obj, interface)
    if kind == Interface.WSGI:
        if threads is None or threads < 1:
            raise AppLoadError(f"cannot load {ref!r}: a WSGI app needs threads >= 1")
        adapter = WSGIAdapter(cast(WSGIApp, obj), threads, name, max_queue, body_buffer_bytes)
        wsgi = Interface.WSGI
        return LoadedApp(adapter, wsgi, ref, threads, supports_lifespan=False, pool=adapter)
    return LoadedApp(as_asgi3(obj), Interface.ASGI, ref, None, supports_lifespan=True)


def load_static(directory: str) -> LoadedApp:
    """The files under `directory` as an app; AppLoadError when it is not a directory."""
    static = StaticFiles(directory)
    return LoadedApp(static, Interface.STATIC, directory, None, supports_lifespan=False)


def _resolve_interface(ref: str, obj: object, interface: Interface) -> Resolved:
    if interface in (Interface.ASGI, Interface.WSGI):
        declared = interface
        evidence = interface_mismatch(obj, declared)
        if evidence is not None:
            actual: Resolved = Interface.WSGI if declared == Interface.ASGI else Interface.ASGI
            raise InterfaceMismatch(
                f"cannot load {ref!r}: it looks like {_article(actual)} app ({evidence}), "
                f'but its mount says interface = "{declared}"; '
                f'set interface = "{actual}" (or "auto") on the mount'
            )
        return declared
    try:
        return detect_interface(obj)
    except AppLoadError as exc:
        raise AppLoadError(f"cannot load {ref!r}: {exc}") from exc


def _article(interface: Resolved) -> str:
    return "a WSGI" if interface == Interface.WSGI else "an ASGI"


def as_asgi3(obj: object) -> ASGIApp:
    """`obj` as an ASGI 3 app: ASGI 2 apps are wrapped by asgiref, others kept."""
    if _is_asgi2(obj):
        return _single_callable(obj)
    return cast(ASGIApp, obj)


def import_from_string(ref: str) -> object:
    """The object named by "module:attribute" or returned by "module:factory()"."""
    module_name, attribute, factory = _parse(ref)
    module = _import_module(ref, module_name)
    obj = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            where = getattr(module, "__file__", None)
            found = f" (in {where})" if where else ""
            raise AppLoadError(
                f"cannot load {ref!r}: module {module_name!r} has no attribute "
                f"{attribute!r}{found}{_did_you_mean(part, obj)}"
            ) from exc
    return _call_factory(ref, attribute, obj) if factory else obj


# How alike a name must be to be suggested: difflib's own default cutoff, which catches
# a dropped, doubled or swapped letter ("ap", "appp", "aplication") but not an unrelated
# name; three suggestions are enough to spot the intended one in a one-line error.
_SUGGESTION_CUTOFF = 0.6
_MAX_SUGGESTIONS = 3


def _did_you_mean(missing: str, owner: object) -> str:
    """ "; did you mean 'app'?" for the public names of `owner` close to `missing`."""
    names = [name for name in dir(owner) if not name.startswith("_")]
    close = difflib.get_close_matches(missing, names, _MAX_SUGGESTIONS, _SUGGESTION_CUTOFF)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(name) for name in close) + "?"


def _parse(ref: str) -> tuple[str, str, bool]:
    module_name, sep, attribute = ref.partition(":")
    factory = attribute.endswith("()")
    attribute = attribute.removesuffix("()")
    names = [*module_name.split("."), *attribute.split(".")]
    if not sep or not all(name.isidentifier() for name in names):
        raise AppLoadError(
            f"cannot load {ref!r}: expected 'module:attribute' or 'module:factory()'"
        )
    return module_name, attribute, factory


def _import_module(ref: str, module_name: str) -> object:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not _is_self_or_parent(exc.name, module_name):
            raise _import_failed(ref, module_name, exc) from exc
        missing = "" if exc.name == module_name else f" (no package {exc.name!r})"
        raise AppLoadError(
            f"cannot load {ref!r}: module {module_name!r} not found{missing}"
        ) from exc
    except SyntaxError as exc:
        raise AppLoadError(
            f"cannot load {ref!r}: syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}"
        ) from exc
    except Exception as exc:
        raise _import_failed(ref, module_name, exc) from exc


def _is_self_or_parent(missing: str, module_name: str) -> bool:
    return module_name == missing or module_name.startswith(missing + ".")


def _import_failed(ref: str, module_name: str, exc: Exception) -> AppLoadError:
    # Told apart from "not found": the module exists and raised while importing.
    return AppLoadError(
        f"cannot load {ref!r}: importing module {module_name!r} raised {type(exc).__name__}: {exc}"
    )


def _call_factory(ref: str, attribute: str, factory: object) -> object:
    if not callable(factory):
        raise AppLoadError(f"cannot load {ref!r}: {attribute} is not callable")
    try:
        return factory()
    except Exception as exc:
        raise AppLoadError(
            f"cannot load {ref!r}: factory {attribute}() raised {type(exc).__name__}: {exc}"
        ) from exc


def detect_interface(obj: object) -> Resolved:
    """Whether `obj` is an ASGI or a WSGI app, from how it is called.

    ASGI 2 (asgiref's double-callable check, taking just `scope`) and coroutine
    functions, or objects whose `__call__` is one, are ASGI. Otherwise the number of
    required positional parameters decides: 2 (environ, start_response) is WSGI, 3
    (scope, receive, send) is ASGI. Anything else raises AppLoadError.
    """
    if _is_asgi2(obj) or _is_coroutine_callable(obj):
        return Interface.ASGI
    count = _positional_count(obj)
    if count == 2:
        return Interface.WSGI
    if count == 3:
        return Interface.ASGI
    raise AppLoadError(
        f"cannot tell whether {_describe(obj)} is an ASGI or a WSGI app from its "
        'signature; set interface = "asgi" or "wsgi" on its mount'
    )


def interface_mismatch(obj: object, declared: Resolved) -> str | None:
    """Why `obj` certainly cannot be called as the `declared` interface calls it (what
    it looks like instead), or None when it may be such an app or its signature is unsure.

    A WSGI server calls `app(environ, start_response)` and iterates the result (PEP 3333
    "The Application/Framework Side"); an ASGI 3 server awaits `app(scope, receive,
    send)`, an ASGI 2 one calls `app(scope)` (the ASGI spec, "Applications").
    """
    takes_wsgi_call = _accepts_positional(obj, 2)
    if declared == Interface.WSGI:
        if _is_coroutine_callable(obj):
            return "calling it makes a coroutine, not a WSGI response"
        if takes_wsgi_call is False and _accepts_positional(obj, 3):
            return "it takes (scope, receive, send), not (environ, start_response)"
        if takes_wsgi_call is False and _accepts_positional(obj, 1):
            return "it takes (scope) alone, as an ASGI 2 app does"
        return None
    takes_asgi_call = _accepts_positional(obj, 3) or _accepts_positional(obj, 1)
    if takes_wsgi_call and takes_asgi_call is False and not _is_coroutine_callable(obj):
        return "it takes (environ, start_response), not (scope, receive, send)"
    return None


def _accepts_positional(obj: object, count: int) -> bool | None:
    """Whether `obj` can be called with `count` positional arguments; None when its
    signature cannot be read (a builtin, a C extension type)."""
    try:
        signature = inspect.signature(cast(Callable[..., object], obj))
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*([None] * count))
    except TypeError:
        return False
    return True


def _is_asgi2(obj: object) -> bool:
    # asgiref calls every callable that is not a coroutine function double-callable,
    # WSGI apps included; a double callable also takes exactly one argument (scope).
    if getattr(obj, "_asgi_single_callable", False):
        return False
    if getattr(obj, "_asgi_double_callable", False):
        return True
    return _is_double_callable(obj) and _positional_count(obj) == 1


def _is_coroutine_callable(obj: object) -> bool:
    if iscoroutinefunction(obj):
        return True
    # Python looks `__call__` up on the type; a class's own __call__ belongs to its
    # instances (calling the class builds one), so classes are skipped.
    return not inspect.isclass(obj) and iscoroutinefunction(
        inspect.getattr_static(type(obj), "__call__", None)
    )


def _positional_count(obj: object) -> int | None:
    """Required positional parameters of calling `obj`; None when it cannot be told."""
    try:
        signature = inspect.signature(cast(Callable[..., object], obj))
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in _POSITIONAL and parameter.default is parameter.empty:
            count += 1
    return count


def _describe(obj: object) -> str:
    name = getattr(obj, "__qualname__", None) or f"a {type(obj).__qualname__} instance"
    return str(name)
