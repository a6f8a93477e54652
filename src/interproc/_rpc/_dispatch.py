"""What an exposed object offers: its public methods, and nothing reachable from them.

The table of callable names is built once, from the object's class (or, for a
module, its public functions), when the server starts.  A request names one
entry of that table and nothing else: no underscore names, no dots, no
attribute walking, so ``__class__``, ``__init__.__globals__``, ``_private``
or ``add.__globals__`` are simply "Method not found" (the RPyC escapes of
CVE-2019-16328 had a dynamic ``getattr`` on a client-chosen name; this
has none).  Parameters are checked against the method's signature before the
call, so a wrong arity or a wrong name is -32602 Invalid params, never a
``TypeError`` raised from inside the method.
"""

from __future__ import annotations

import inspect
import types
from typing import Any, Callable

from ._protocol import INVALID_PARAMS, METHOD_NOT_FOUND, Fault


class _Entry:
    __slots__ = ("fn", "sig", "simple", "lo", "hi", "is_async")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        try:
            self.sig: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins have none: let the call decide
            self.sig = None
        # The common case (only positional-or-keyword parameters) is checked by
        # counting, which costs nothing next to Signature.bind.
        params = list(self.sig.parameters.values()) if self.sig else []
        self.simple = self.sig is not None and all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self.hi = len(params)
        self.lo = sum(1 for p in params if p.default is p.empty)


def public_methods(obj: Any) -> dict[str, Callable[..., Any]]:
    """The callable public names of ``obj``: methods of its class, or functions of a module."""
    found: dict[str, Callable[..., Any]] = {}
    if isinstance(obj, types.ModuleType):
        for name, value in vars(obj).items():
            if not name.startswith("_") and inspect.isfunction(value) and value.__module__ == obj.__name__:
                found[name] = value
        return found
    for name in dir(type(obj)):
        if name.startswith("_"):
            continue
        static = inspect.getattr_static(obj, name)
        if isinstance(static, (types.FunctionType, staticmethod, classmethod)) or inspect.ismethoddescriptor(static):
            value = getattr(obj, name)
            if callable(value):
                found[name] = value
    return found


class Exposed:
    """The dispatch table of one exposed object."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self._table = {name: _Entry(fn) for name, fn in public_methods(obj).items()}

    @property
    def names(self) -> list[str]:
        return sorted(self._table)

    def signature(self, name: str) -> inspect.Signature | None:
        return self._table[name].sig

    def resolve(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> _Entry:
        """The entry for ``method`` with these params, or a :class:`Fault` (-32601 / -32602)."""
        entry = self._table.get(method)
        if entry is None:
            raise Fault(METHOD_NOT_FOUND, f"no public method {method!r}")
        if entry.simple and not kwargs:
            if not entry.lo <= len(args) <= entry.hi:
                want = str(entry.lo) if entry.lo == entry.hi else f"{entry.lo} to {entry.hi}"
                raise Fault(INVALID_PARAMS, f"{method}() takes {want} params, {len(args)} given")
        elif entry.sig is not None:
            try:
                entry.sig.bind(*args, **kwargs)
            except TypeError as exc:
                raise Fault(INVALID_PARAMS, f"{method}(): {exc}") from None
        return entry
