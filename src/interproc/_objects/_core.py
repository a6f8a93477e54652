"""One connection of distributed objects, either end, over the rpc Endpoint.

Values travel by value when they are plain data (None, bool, int, float,
str, bytes, lists, tuples, dicts) and by reference otherwise: the sender
keeps the object in its :class:`Exports` table and sends
``{"$ref": ["m", oid, cid]}`` ("mine"); the receiver makes (or reuses) one
proxy per oid.  A proxy sent back to its owner travels as
``{"$ref": ["y", oid]}`` ("yours") and arrives as the original object, so
identity is kept.

Reference counting is per connection: every reference sent adds one to the
peer's count for that oid; the receiving proxy counts the references it
got and returns them all in one ``obj.release(oid, n)`` when it is closed or
collected, so a release crossing a new reference on the wire never frees an
object still in use.  A connection that ends (or whose lease runs out)
drops all its counts; an object whose last count goes is dropped from the
table, so (with no other reference) its ``__del__`` runs.

Only public names are reachable: methods and properties of the class (no
underscore names, no dots), and public instance attributes for get/set of
existing names.  Modules, classes and functions are never handed out by
reference, so nothing walks from an object to its module's globals.
"""

from __future__ import annotations

import inspect
import queue
import threading
import types
import weakref
from time import monotonic
from typing import Any, Callable

from .._errors import ChannelClosed, HandleClosed, InterprocError, NotFound
from .._rpc._dispatch import _Entry
from .._rpc._endpoint import Endpoint
from .._rpc._protocol import INVALID_PARAMS, METHOD_NOT_FOUND, Fault, Protocol
from ._proxy import InterfaceView, ObjectProxy

REF, DICT = "$ref", "$dict"
_PLAIN = frozenset((str, int, float, bool, type(None), bytes))
_NEVER_BY_REF = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                 types.CodeType, types.FrameType)


def _public(name: Any) -> str:
    if not isinstance(name, str) or not name or name.startswith("_") or not name.isidentifier():
        raise Fault(METHOD_NOT_FOUND, f"{name!r} is not a public name")
    return name


# -- what of a class is reachable ------------------------------------------------
class ClassInfo:
    """The public methods and properties of one class, found once."""

    _lock = threading.Lock()
    _by_class: dict[type, ClassInfo] = {}
    _by_cid: dict[int, ClassInfo] = {}
    declared: dict[type, set[str]] = {}  # interfaces named at Server.register

    def __init__(self, cls: type, cid: int) -> None:
        self.cls, self.cid, self.name = cls, cid, cls.__name__
        self.methods: dict[str, tuple[_Entry, bool]] = {}  # name -> (entry, needs self)
        self.properties: dict[str, property] = {}
        for name in dir(cls):
            if name.startswith("_"):
                continue
            static = inspect.getattr_static(cls, name)
            if isinstance(static, types.FunctionType):
                self.methods[name] = (_Entry(static), True)
            elif isinstance(static, staticmethod):
                self.methods[name] = (_Entry(static.__func__), False)
            elif isinstance(static, classmethod):
                self.methods[name] = (_Entry(getattr(cls, name)), False)
            elif isinstance(static, property):
                self.properties[name] = static
            elif inspect.ismethoddescriptor(static) and callable(static):
                self.methods[name] = (_Entry(static), True)

    @property
    def interfaces(self) -> set[str]:
        names = {c.__name__ for c in self.cls.__mro__ if c is not object}
        for c in self.cls.__mro__:
            names |= self.declared.get(c, set())
        return names

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "methods": sorted(self.methods), "properties": sorted(self.properties)}

    @classmethod
    def of(cls, klass: type) -> ClassInfo:
        info = cls._by_class.get(klass)
        if info is None:
            with cls._lock:
                info = cls._by_class.get(klass)
                if info is None:
                    info = cls(klass, len(cls._by_cid) + 1)
                    cls._by_cid[info.cid] = info
                    cls._by_class[klass] = info
        return info

    @classmethod
    def by_cid(cls, cid: Any) -> ClassInfo:
        info = cls._by_cid.get(cid)
        if info is None:
            raise Fault(INVALID_PARAMS, f"unknown class id {cid!r}")
        return info


# -- objects this process hands out ------------------------------------------------
class _Export:
    __slots__ = ("obj", "info", "refs")

    def __init__(self, obj: Any, info: ClassInfo) -> None:
        self.obj, self.info = obj, info
        self.refs: dict[Session, int] = {}


class Exports:
    """oid -> object, with the number of references each session (connection) holds."""

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._by_oid: dict[int, _Export] = {}
        self._by_id: dict[int, int] = {}  # id(obj) -> oid, while the table keeps obj alive
        self._next = 1
        self._on_change = on_change

    def export(self, obj: Any, session: Session) -> tuple[int, ClassInfo]:
        info = ClassInfo.of(type(obj))
        with self._lock:
            oid = self._by_id.get(id(obj))
            if oid is None:
                oid, self._next = self._next, self._next + 1
                self._by_oid[oid] = _Export(obj, info)
                self._by_id[id(obj)] = oid
            ex = self._by_oid[oid]
            ex.refs[session] = ex.refs.get(session, 0) + 1
        if self._on_change is not None:
            self._on_change()
        return oid, info

    def lookup(self, oid: Any, session: Session) -> Any:
        """The object ``oid`` if ``session`` holds a reference to it (else a clear error)."""
        ex = self._by_oid.get(oid)
        if ex is None or session not in ex.refs:
            raise Fault(INVALID_PARAMS, f"no live object #{oid!r} for this connection (released?)")
        return ex.obj

    def _unref(self, oid: int, session: Session, n: int | None, dropped: list[Any]) -> None:
        ex = self._by_oid.get(oid)
        if ex is None or session not in ex.refs:
            return
        left = 0 if n is None else ex.refs[session] - n
        if left > 0:
            ex.refs[session] = left
            return
        del ex.refs[session]
        if not ex.refs:
            del self._by_oid[oid]
            del self._by_id[id(ex.obj)]
            dropped.append(ex.obj)

    def release(self, oid: Any, session: Session, n: Any) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise Fault(INVALID_PARAMS, f"release count must be a positive int, not {n!r}")
        dropped: list[Any] = []
        with self._lock:
            self._unref(oid, session, n, dropped)
        self._dropped(dropped)

    def drop(self, session: Session) -> None:
        """The connection ended: every reference it held goes."""
        dropped: list[Any] = []
        with self._lock:
            for oid in [o for o, ex in self._by_oid.items() if session in ex.refs]:
                self._unref(oid, session, None, dropped)
        self._dropped(dropped)

    def _dropped(self, dropped: list[Any]) -> None:
        if dropped:
            dropped.clear()  # outside the lock: __del__ runs here, and may call anything
            if self._on_change is not None:
                self._on_change()

    def counts(self) -> dict[str, int]:
        """Live objects per class name."""
        out: dict[str, int] = {}
        with self._lock:
            for ex in self._by_oid.values():
                out[ex.info.name] = out.get(ex.info.name, 0) + 1
        return out

    def __len__(self) -> int:
        return len(self._by_oid)


# -- releases from finalizers --------------------------------------------------------
# A proxy collected by the garbage collector may be finalized on any thread, even
# one holding an Endpoint lock: the finalizer only queues (SimpleQueue.put is safe
# there) and one thread sends the releases.
_RELEASES: queue.SimpleQueue[tuple[weakref.ref[Session], int, list[int]]] = queue.SimpleQueue()
_releaser_lock = threading.Lock()
_releaser: list[threading.Thread] = []


def _release_loop() -> None:
    while True:
        ref, oid, box = _RELEASES.get()
        session = ref()
        n, box[0] = box[0], 0
        if session is not None and n > 0:
            session.notify_release(oid, n)


def _queue_release(ref: weakref.ref[Session], oid: int, box: list[int]) -> None:
    _RELEASES.put((ref, oid, box))


def _ensure_releaser() -> None:
    if not _releaser:
        with _releaser_lock:
            if not _releaser:
                t = threading.Thread(target=_release_loop, name="interproc-objects-release", daemon=True)
                t.start()
                _releaser.append(t)


# -- one connection -------------------------------------------------------------------
class _Handler:
    __slots__ = ("fn", "is_async")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.is_async = fn, False


class Session:
    """One connection, either end: the Endpoint, our exports to the peer, the peer's objects."""

    def __init__(self, channel: Any, exports: Exports, *, timeout: float | None = None, workers: int = 16,
                 codecs: tuple[str, ...] | None = None, factory: Callable[[str, list[Any], dict[str, Any]], Any] | None = None,
                 hello: Callable[[], dict[str, Any]] | None = None, classes: Callable[[], list[Any]] | None = None,
                 serving: bool = True, tracebacks: bool = True) -> None:
        self._setup(exports, factory, hello, classes, serving)
        kw = {} if codecs is None else {"codecs": codecs}
        self.ep: Any = Endpoint(channel, exposed=self, protocol=Protocol(**kw), timeout=timeout,  # type: ignore[arg-type]
                                workers=workers, tracebacks=tracebacks)

    def _setup(self, exports: Exports, factory: Callable[[str, list[Any], dict[str, Any]], Any] | None,
               hello: Callable[[], dict[str, Any]] | None, classes: Callable[[], list[Any]] | None, serving: bool) -> None:
        self.exports = exports
        self.last_seen = monotonic()
        self._lock = threading.Lock()
        self._imports: dict[int, weakref.ref[ObjectProxy]] = {}
        self._classes: dict[int, dict[str, Any]] = {}  # the peer's class descriptions
        self._sent_classes: set[int] = set()
        self._serving = serving  # someone reads when no call of ours waits (server: always)
        self._weak = weakref.ref(self)
        handlers: dict[str, Callable[..., Any]] = {
            "obj.call": self._h_call, "obj.get": self._h_get, "obj.set": self._h_set, "obj.qi": self._h_qi,
            "obj.release": self._h_release, "obj.ping": self._h_ping, "obj.describe": self._h_describe,
        }
        if factory is not None:
            self._factory = factory
            handlers["obj.create"] = self._h_create
        if hello is not None:
            handlers["obj.hello"] = hello
        if classes is not None:
            handlers["obj.classes"] = classes
        self._handlers = {k: _Handler(v) for k, v in handlers.items()}

    proxy_class: type[ObjectProxy]  # set below, once ObjectProxy exists

    def _describe_now(self, cid: Any) -> dict[str, Any]:
        desc: dict[str, Any] = self.ep.call("obj.describe", [cid])
        return desc

    # the Endpoint asks us what a method name means
    def resolve(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> _Handler:
        h = self._handlers.get(method)
        if h is None:
            raise Fault(METHOD_NOT_FOUND, f"no objects method {method!r}")
        self.last_seen = monotonic()
        return h

    # -- marshalling -------------------------------------------------------------
    def dump(self, v: Any) -> Any:
        t = type(v)
        if t in _PLAIN:
            return v
        if t is list or t is tuple:
            return [self.dump(x) for x in v]
        if t is dict:
            d = {k: self.dump(x) for k, x in v.items()}
            return {DICT: d} if len(d) == 1 and (REF in d or DICT in d) else d
        if isinstance(v, InterfaceView):
            v = v._base
        if isinstance(v, ObjectProxy):
            if v._session is not self:
                raise TypeError("a proxy can be passed only back to the server it came from")
            v._check()
            return {REF: ["y", v._oid]}
        if isinstance(v, (str, int, float, bytes)):
            return v
        if isinstance(v, _NEVER_BY_REF):
            raise TypeError(f"{type(v).__name__} objects are never passed by reference")
        oid, info = self.exports.export(v, self)
        if not self._serving:
            self._start_serving()
        if info.cid in self._sent_classes:
            return {REF: ["m", oid, info.cid]}
        self._sent_classes.add(info.cid)
        return {REF: ["m", oid, info.cid, info.describe()]}

    def load(self, v: Any) -> Any:
        t = type(v)
        if t is list:
            return [self.load(x) for x in v]
        if t is dict:
            if len(v) == 1:
                if REF in v:
                    return self._load_ref(v[REF])
                if DICT in v and type(v[DICT]) is dict:
                    return {k: self.load(x) for k, x in v[DICT].items()}
            return {k: self.load(x) for k, x in v.items()}
        return v

    def _load_ref(self, ref: Any) -> Any:
        if not isinstance(ref, list) or len(ref) < 2 or not isinstance(ref[1], int):
            raise Fault(INVALID_PARAMS, f"malformed object reference {ref!r}")
        if ref[0] == "y":
            return self.exports.lookup(ref[1], self)
        if ref[0] != "m" or len(ref) < 3:
            raise Fault(INVALID_PARAMS, f"malformed object reference {ref!r}")
        oid, cid = ref[1], ref[2]
        if len(ref) > 3 and isinstance(ref[3], dict):
            self._classes[cid] = ref[3]
        with self._lock:
            wr = self._imports.get(oid)
            p = wr() if wr is not None else None
            if p is not None and not p._closed:  # a closed one already gave its references back
                p._box[0] += 1
                return p
        desc = self._classes.get(cid)
        if desc is None:  # its first description is in a message another thread still unpacks
            desc = self._classes[cid] = self._describe_now(cid)
        with self._lock:
            wr = self._imports.get(oid)
            p = wr() if wr is not None else None
            if p is not None and not p._closed:  # a closed one already gave its references back
                p._box[0] += 1
                return p
            p = self.proxy_class(self, oid, desc)
            self._imports[oid] = weakref.ref(p)
        _ensure_releaser()
        weakref.finalize(p, _queue_release, self._weak, oid, p._box)
        return p

    def _start_serving(self) -> None:
        """The client end exports its first object: from now on a thread reads while
        no call of ours waits, so the peer can call back at any time."""
        with self._lock:
            if self._serving:
                return
            self._serving = True
        threading.Thread(target=self._serve_quietly, name="interproc-objects-callbacks", daemon=True).start()

    def _serve_quietly(self) -> None:
        try:
            self.ep.serve()
        except (ChannelClosed, HandleClosed, InterprocError, OSError):
            pass
        finally:
            self.closed_by_peer()

    def closed_by_peer(self) -> None:
        self.ep.close()
        self.exports.drop(self)

    # -- calling the peer ------------------------------------------------------------
    def call(self, method: str, *params: Any, timeout: Any = None) -> Any:
        ep = self.ep
        fut = ep.submit(method, [self.dump(p) for p in params])
        return self.load(fut.result(ep.timeout if timeout is None else timeout))

    def notify_release(self, oid: int, n: int) -> None:
        with self._lock:
            wr = self._imports.get(oid)
            if wr is not None and wr() is None:
                del self._imports[oid]
        try:
            self.ep.notify("obj.release", [oid, n])
        except (ChannelClosed, HandleClosed, OSError):
            pass  # the connection is gone: the peer dropped everything already

    # -- answering the peer ---------------------------------------------------------------
    def _target(self, oid: Any, name: Any) -> tuple[Any, ClassInfo, str]:
        obj = self.exports.lookup(oid, self)
        return obj, ClassInfo.of(type(obj)), _public(name)

    def _h_call(self, oid: Any, name: Any, args: Any = (), kwargs: Any = None) -> Any:
        return self.dump(self._invoke(oid, name, args, kwargs))

    def _invoke(self, oid: Any, name: Any, args: Any, kwargs: Any) -> Any:
        obj, info, name = self._target(oid, name)
        entry = info.methods.get(name)
        if entry is None:
            raise Fault(METHOD_NOT_FOUND, f"{info.name} has no public method {name!r}")
        if not isinstance(args, list) or not isinstance(kwargs or {}, dict):
            raise Fault(INVALID_PARAMS, "obj.call takes [oid, name, [args], {kwargs}]")
        args, kwargs = self.load(args), self.load(kwargs or {})
        e, needs_self = entry
        full = [obj, *args] if needs_self else args
        if e.simple and not kwargs:
            if not e.lo <= len(full) <= e.hi:
                k = int(needs_self)
                raise Fault(INVALID_PARAMS, f"{name}() takes {e.lo - k} to {e.hi - k} params, {len(args)} given")
        elif e.sig is not None:
            try:
                e.sig.bind(*full, **kwargs)
            except TypeError as exc:
                raise Fault(INVALID_PARAMS, f"{name}(): {exc}") from None
        return e.fn(*full, **kwargs)

    def _h_get(self, oid: Any, name: Any) -> Any:
        obj, info, name = self._target(oid, name)
        prop = info.properties.get(name)
        if prop is not None:
            return self.dump(prop.__get__(obj, info.cls))
        d = getattr(obj, "__dict__", None)
        if name not in info.methods and d is not None and name in d:
            return self.dump(d[name])
        raise AttributeError(f"{info.name!r} object has no public attribute {name!r}")

    def _h_set(self, oid: Any, name: Any, value: Any) -> None:
        obj, info, name = self._target(oid, name)
        prop = info.properties.get(name)
        if prop is not None:
            if prop.fset is None:
                raise AttributeError(f"property {name!r} of {info.name!r} is read-only")
            prop.__set__(obj, self.load(value))
            return None
        d = getattr(obj, "__dict__", None)
        if name in info.methods or d is None or name not in d:
            raise AttributeError(f"{info.name!r} object has no public attribute {name!r} to set")
        setattr(obj, name, self.load(value))
        return None

    def _h_qi(self, oid: Any, interface: Any) -> bool:
        obj = self.exports.lookup(oid, self)
        return isinstance(interface, str) and interface in ClassInfo.of(type(obj)).interfaces

    def _h_release(self, oid: Any, n: Any) -> None:
        self.exports.release(oid, self, n)

    def _h_ping(self) -> None:
        return None  # resolve() noted the time

    def _h_describe(self, cid: Any) -> dict[str, Any]:
        if cid not in self._sent_classes:  # only classes this peer was given objects of
            raise Fault(INVALID_PARAMS, f"unknown class id {cid!r}")
        return ClassInfo.by_cid(cid).describe()

    def _h_create(self, progid: Any, args: Any = (), kwargs: Any = None) -> Any:
        if not isinstance(progid, str):
            raise Fault(INVALID_PARAMS, "obj.create takes [progid, [args], {kwargs}]")
        return self.dump(self._factory(progid, self.load(list(args)), self.load(kwargs or {})))


Session.proxy_class = ObjectProxy


def not_found(progid: str) -> NotFound:
    return NotFound(f"no class is registered as {progid!r}")
