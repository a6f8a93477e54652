"""The blocking proxy: ``rpc.connect(address) -> Proxy``."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Generic, TypeVar, overload

from .._address import connect as _connect_channel
from .._errors import HandleClosed, NotFound, RemoteError
from .._nats import is_nats
from ._endpoint import _UNSET, Endpoint, Pending
from ._lines import is_line_address, connect_lines
from ._nats import NatsChannel
from ._protocol import AVAILABLE, Protocol

T = TypeVar("T")


def interface_methods(interface: Any) -> dict[str, inspect.Signature]:
    """The public methods a ``typing.Protocol`` (or any class) declares, with their signatures
    (``self`` dropped)."""
    found = {}
    for name in dir(interface):
        if name.startswith("_"):
            continue
        value = inspect.getattr_static(interface, name)
        if inspect.isfunction(value):
            sig = inspect.signature(value)
            params = list(sig.parameters.values())[1:]
            found[name] = sig.replace(parameters=params)
    return found


class InterfaceChecks:
    """The typed-interface check of a proxy, blocking or asyncio: a call names a method the
    interface declares, with arguments its signature binds."""

    _interface: Any
    _sigs: dict[str, inspect.Signature] | None

    def _check_name(self, name: str, args: Any, kwargs: Any) -> None:
        if self._sigs is not None:
            sig = self._sigs.get(name)
            if sig is None:
                raise AttributeError(f"{self._interface.__name__} has no method {name!r}")
            sig.bind(*args, **kwargs)


class _Method:
    """A bound remote method: ``p.add(1, 2)``."""

    __slots__ = ("_ep", "_name", "_sig", "__signature__")

    def __init__(self, ep: Endpoint, name: str, sig: inspect.Signature | None) -> None:
        self._ep, self._name, self._sig = ep, name, sig
        if sig is not None:
            self.__signature__ = sig

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._sig is not None:
            self._sig.bind(*args, **kwargs)  # a TypeError here, before anything is sent
        return self._ep.call(self._name, args, kwargs or None)

    def __repr__(self) -> str:
        return f"<remote method {self._name}{self._sig or '(...)'}>"


class Batch:
    """Collects calls; ``with p.batch() as b: f = b.add(1, 2)`` sends them as one message on exit."""

    def __init__(self, proxy: Proxy[Any]) -> None:
        self._proxy = proxy
        self._calls: list[tuple[str, Any, dict[str, Any] | None, bool]] = []
        self._futures: list[_BatchFuture] = []
        self.sent = False

    def call(self, method: str, *args: Any, **kwargs: Any) -> _BatchFuture:
        if self.sent:
            raise HandleClosed("this batch was already sent")
        self._proxy._check_name(method, args, kwargs)
        self._calls.append((method, args, kwargs or None, False))
        fut = _BatchFuture(method)
        self._futures.append(fut)
        return fut

    def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.sent:
            raise HandleClosed("this batch was already sent")
        self._proxy._check_name(method, args, kwargs)
        self._calls.append((method, args, kwargs or None, True))
        self._futures.append(_BatchFuture(method))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self.call(name, *args, **kwargs)

    def send(self) -> None:
        """Send the collected calls (the ``with`` block does it on exit)."""
        if self.sent or not self._calls:
            self.sent = True
            return
        self.sent = True
        pendings = self._proxy._ep.batch(self._calls)
        for fut, pending in zip(self._futures, pendings):
            fut._pending = pending

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.send()


class _BatchFuture:
    __slots__ = ("method", "_pending")

    def __init__(self, method: str) -> None:
        self.method = method
        self._pending: Pending | None = None

    def result(self, timeout: float | None = _UNSET) -> Any:
        """The call's result (after the batch was sent)."""
        if self._pending is None:
            raise RuntimeError(f"{self.method}(): the batch has not been sent yet (leave the with block)")
        return self._pending.result(timeout)

    def done(self) -> bool:
        return self._pending is not None and self._pending.done()


class Proxy(InterfaceChecks, Generic[T]):
    """The client end of an RPC connection.  Remote methods are attributes: ``p.add(1, 2)``."""

    def __init__(self, ep: Endpoint, address: str, interface: Any = None) -> None:
        self._ep = ep
        self.address = address
        self._interface = interface
        self._sigs = interface_methods(interface) if interface is not None else None
        self._methods: dict[str, _Method] = {}

    @property
    def codec(self) -> str:
        """The codec the calls travel in (``msgpack`` when both sides have it, else ``json``)."""
        return self._ep.proto.codec

    @property
    def timeout(self) -> float | None:
        """The default timeout of every call, in seconds (None: forever)."""
        return self._ep.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._ep.timeout = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        method = self._methods.get(name)
        if method is None:
            sig = None
            if self._sigs is not None:
                sig = self._sigs.get(name)
                if sig is None:
                    raise AttributeError(f"{self._interface.__name__} has no method {name!r}")
            method = self._methods[name] = _Method(self._ep, name, sig)
            self.__dict__[name] = method  # next time a plain attribute hit, no __getattr__
        return method

    def call(self, method: str, *args: Any, timeout: float | None = _UNSET, **kwargs: Any) -> Any:
        """Call ``method``; ``timeout=`` for this call only (default: the proxy's)."""
        self._check_name(method, args, kwargs)
        return self._ep.call(method, args, kwargs or None, timeout)

    def submit(self, method: str, *args: Any, **kwargs: Any) -> Pending:
        """Start a call and return at once: ``.result(timeout=)``, ``.cancel()``, ``.done()``."""
        self._check_name(method, args, kwargs)
        return self._ep.submit(method, args, kwargs or None)

    def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Call ``method`` one-way: no reply, no error reported back."""
        self._check_name(method, args, kwargs)
        self._ep.notify(method, args, kwargs or None)

    def batch(self) -> Batch:
        """Several calls in one message and one round trip."""
        return Batch(self)

    def as_(self, interface: Callable[..., T]) -> T:
        """This connection, typed and checked as ``interface`` (a ``typing.Protocol``)."""
        return Proxy(self._ep, self.address, interface)  # type: ignore[return-value]

    @property
    def closed(self) -> bool:
        return self._ep.closed

    def close(self) -> None:
        self._ep.close()

    def __enter__(self) -> Proxy[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._sigs or ()))

    def __repr__(self) -> str:
        iface = f" as {self._interface.__name__}" if self._interface else ""
        return f"<rpc.Proxy {self.address}{iface} codec={self.codec}>"


@overload
def connect(address: str, *, interface: Callable[..., T], timeout: float | None = ..., codec: str | None = ...,
            **options: Any) -> T: ...
@overload
def connect(address: str, *, interface: None = ..., timeout: float | None = ..., codec: str | None = ...,
            **options: Any) -> Proxy[Any]: ...
def connect(address: str, *, interface: Callable[..., T] | None = None, timeout: float | None = None,
            codec: str | None = None, **options: Any) -> Any:
    """Connect to an RPC server at ``address`` and return a proxy.

    ``timeout=`` bounds the connection and is the default timeout of every
    call.  ``codec=`` forces ``"json"`` or ``"msgpack"``; by default the fastest
    one both sides have is negotiated.  ``interface=`` (a ``typing.Protocol``)
    types the proxy and checks calls against its signatures before sending.
    Other options (``authkey=``, ``ssl=``, ...) go to ``interproc.connect``.
    """
    channel: Any
    if is_nats(address):
        channel = NatsChannel(address, timeout=timeout, **options)
        offer = AVAILABLE if codec is None else (codec,)
        ep = Endpoint(channel, protocol=Protocol(codecs=offer), timeout=timeout)
        try:
            # Also finds out whether any server has the service: NATS answers "no responders".
            ep.hello(timeout)
        except RemoteError as exc:
            ep.close()
            if exc.remote_type == "NotFound":
                raise NotFound(str(exc.message)) from None
            raise
        except BaseException:
            ep.close()
            raise
        return Proxy(ep, address, interface)
    if is_line_address(address):
        channel = connect_lines(address, timeout=timeout, **options)
        ep = Endpoint(channel, protocol=Protocol(codecs=("json",)), timeout=timeout)
    else:
        channel = _connect_channel(address, timeout=timeout, **options)
        offer = AVAILABLE if codec is None else (codec,)
        ep = Endpoint(channel, protocol=Protocol(codecs=offer), timeout=timeout)
        if offer != ("json",):
            try:
                ep.hello(timeout)
            except BaseException:
                ep.close()
                raise
    proxy: Proxy[Any] = Proxy(ep, address, interface)
    return proxy
