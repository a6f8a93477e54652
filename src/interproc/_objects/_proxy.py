"""The client face of a remote object: :class:`ObjectProxy` and :class:`InterfaceView`.

A proxy holds its Session, the object's id there, the class description
(method and property names) and a one-item list counting the references this
process received, which ``close()`` or the garbage collector's finalizer
(set up by the Session) returns to the owner in one ``obj.release``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable, TypeVar, overload

from .._errors import HandleClosed, InterprocError, RemoteError
from .._rpc._client import interface_methods

if TYPE_CHECKING:
    from ._core import Session

T = TypeVar("T")


class NoInterface(InterprocError, TypeError):
    """The remote object does not implement the interface asked for (COM's E_NOINTERFACE)."""


class _Method:
    __slots__ = ("_proxy", "_name", "__signature__")

    def __init__(self, proxy: ObjectProxy, name: str, sig: inspect.Signature | None = None) -> None:
        self._proxy, self._name = proxy, name
        if sig is not None:
            self.__signature__ = sig

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        sig = getattr(self, "__signature__", None)
        if sig is not None:
            sig.bind(*args, **kwargs)  # a TypeError here, before anything is sent
        p = self._proxy
        p._check()
        return p._session.call("obj.call", p._oid, self._name, list(args), kwargs)

    def __repr__(self) -> str:
        return f"<remote method {self._proxy._desc.get('name')}.{self._name}>"


class ObjectProxy:
    """A remote object: its public methods are methods here, its properties attributes.

    ``close()`` (or garbage collection) releases this process's references;
    ``query_interface(I)`` returns a view typed as ``I`` or raises NoInterface;
    ``call(name, ...)`` reaches a remote method hidden by one of these names.
    """

    __slots__ = ("_session", "_oid", "_desc", "_box", "_methods", "_closed", "__weakref__")

    def __init__(self, session: Session, oid: int, desc: dict[str, Any]) -> None:
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_oid", oid)
        object.__setattr__(self, "_desc", desc)
        object.__setattr__(self, "_box", [1])  # references received; returned in one release
        object.__setattr__(self, "_methods", {})
        object.__setattr__(self, "_closed", False)

    def _method(self, name: str, sig: inspect.Signature | None = None) -> Any:
        return _Method(self, name, sig)

    def _check(self) -> None:
        if self._closed:
            raise HandleClosed(f"proxy to remote {self._desc.get('name')} #{self._oid} was closed")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        m = self._methods.get(name)
        if m is not None:
            return m
        if name in self._desc.get("methods", ()):
            m = self._methods[name] = self._method(name)
            return m
        self._check()
        try:
            return self._session.call("obj.get", self._oid, name)
        except RemoteError as exc:
            if exc.remote_type in ("AttributeError", "MethodNotFound"):
                raise AttributeError(exc.message) from None
            raise

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            raise AttributeError(f"cannot set {name!r} on a remote object")
        self._check()
        try:
            self._session.call("obj.set", self._oid, name, value)
        except RemoteError as exc:
            if exc.remote_type in ("AttributeError", "MethodNotFound"):
                raise AttributeError(exc.message) from None
            raise

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call remote method ``name`` (for names this proxy's own methods hide)."""
        self._check()
        return self._session.call("obj.call", self._oid, name, list(args), kwargs)

    @overload
    def query_interface(self, interface: str) -> Any: ...
    @overload
    def query_interface(self, interface: Callable[..., T]) -> T: ...
    def query_interface(self, interface: Any) -> Any:
        """This object seen as ``interface`` (a class or Protocol, or its name): a view typed
        as ``interface``; NoInterface if the object does not implement it."""
        self._check()
        name = interface if isinstance(interface, str) else getattr(interface, "__name__", None)
        if not isinstance(name, str):
            raise TypeError(f"interface must be a class or a name, not {type(interface).__name__}")
        if not self._session.call("obj.qi", self._oid, name):
            raise NoInterface(f"remote {self._desc.get('name')} does not implement {name}")
        return InterfaceView(self, interface)

    @property
    def closed(self) -> bool:
        return bool(self._closed)

    def close(self) -> None:
        """Release this process's references to the remote object now."""
        if self._closed:
            return
        object.__setattr__(self, "_closed", True)
        box = self._box
        n, box[0] = box[0], 0
        if n:
            self._session.notify_release(self._oid, n)

    def __enter__(self) -> ObjectProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __dir__(self) -> list[str]:
        return sorted(set(self._desc.get("methods", ())) | set(self._desc.get("properties", ()))
                      | {"call", "close", "closed", "query_interface"})

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<remote {self._desc.get('name')} #{self._oid}{state}>"


class InterfaceView:
    """A remote object through one interface: only its methods (checked against their
    signatures before sending) and its properties."""

    def __init__(self, base: ObjectProxy, interface: Any) -> None:
        self._base = base
        self._interface = interface
        self._name = interface if isinstance(interface, str) else interface.__name__
        self._sigs = {} if isinstance(interface, str) else interface_methods(interface)
        self._props = set() if isinstance(interface, str) else {
            n for n in dir(interface) if not n.startswith("_")
            and isinstance(inspect.getattr_static(interface, n), property)} | {
            n for n in getattr(interface, "__annotations__", {}) if not n.startswith("_")}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if isinstance(self._interface, str):
            return getattr(self._base, name)
        if name in self._sigs:
            return self._base._method(name, self._sigs[name])
        if name in self._props:
            return getattr(self._base, name)
        raise AttributeError(f"{self._name} has no member {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        elif isinstance(self._interface, str) or name in self._props:
            setattr(self._base, name, value)
        else:
            raise AttributeError(f"{self._name} has no settable member {name!r}")

    def query_interface(self, interface: Any) -> Any:
        return self._base.query_interface(interface)

    @property
    def closed(self) -> bool:
        return self._base.closed

    def close(self) -> None:
        self._base.close()

    def __repr__(self) -> str:
        return f"<remote {self._base._desc.get('name')} #{self._base._oid} as {self._name}>"
