"""The client end: ``connect(address) -> Connection``, ``create(progid, address, ...)``.

A Connection asks the server for its lease terms (``obj.hello``) and pings
it from a daemon thread every ``ping_interval``.  ``create()`` shares one
connection per (address, authkey, ssl) in the process, as COM shares one
channel per server, so proxies from several ``create()`` calls can be
passed to each other's methods.
"""

from __future__ import annotations

import threading
from typing import Any

from .._address import connect as _connect_channel
from .._errors import ChannelClosed, HandleClosed, ProtocolError, RemoteError
from ._core import Exports, Session
from ._proxy import ObjectProxy


class Connection:
    """One connection to an object server; objects created through it share it."""

    def __init__(self, address: str, *, timeout: float | None = None, **options: Any) -> None:
        channel = _connect_channel(address, timeout=timeout, **options)
        self.address = address
        self._session = Session(channel, Exports(), timeout=timeout, serving=False)
        try:
            self._session.ep.hello(timeout)
            terms = self._session.call("obj.hello")
        except RemoteError as exc:
            self._session.ep.close()
            if exc.remote_type == "MethodNotFound":
                raise ProtocolError(f"{address} is not an interproc.objects server (it has no obj.hello)") from None
            raise
        except BaseException:
            self._session.ep.close()
            raise
        self.ping_interval: float = float(terms["ping_interval"])
        self.missed_pings: int = int(terms["missed_pings"])
        self._stop = threading.Event()
        threading.Thread(target=self._pinger, name="interproc-objects-ping", daemon=True).start()

    def _pinger(self) -> None:
        ep = self._session.ep
        while not self._stop.wait(self.ping_interval):
            try:
                ep.notify("obj.ping")
            except (ChannelClosed, HandleClosed, OSError):
                return

    @property
    def timeout(self) -> float | None:
        """The default timeout of every call, in seconds (None: forever)."""
        timeout: float | None = self._session.ep.timeout
        return timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._session.ep.timeout = value

    def create(self, progid: str, *args: Any, **kwargs: Any) -> Any:
        """A proxy to a new instance of the class registered as ``progid`` (constructed with
        ``args``/``kwargs``).  ``RemoteError`` (``remote_type`` ``"NotFound"``) for an
        unknown ProgID."""
        obj = self._session.call("obj.create", progid, list(args), kwargs)
        if not isinstance(obj, ObjectProxy):
            raise TypeError(f"{progid} constructed a plain value, not an object: {obj!r}")
        return obj

    def classes(self) -> list[dict[str, Any]]:
        """The server's ProgIDs, class names, interfaces and live object counts."""
        return list(self._session.call("obj.classes"))

    @property
    def closed(self) -> bool:
        return bool(self._session.ep.closed)

    def close(self) -> None:
        """Close the connection: the server releases every object it gave this process."""
        self._stop.set()
        self._session.closed_by_peer()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<objects.Connection {self.address}{' closed' if self.closed else ''}>"


def connect(address: str, *, timeout: float | None = None, **options: Any) -> Connection:
    """Connect to an object server (``options``: ``authkey=``, ``ssl=`` ... as for
    ``interproc.connect``).  ``timeout`` bounds the connection and every call."""
    return Connection(address, timeout=timeout, **options)


_shared_lock = threading.Lock()
_shared: dict[tuple[Any, ...], Connection] = {}


def create(progid: str, address: str, *args: Any, authkey: bytes | None = None, ssl: Any = None,
           timeout: float | None = None, **kwargs: Any) -> Any:
    """A proxy to a new remote instance of ``progid`` at ``address``; ``args`` and ``kwargs``
    go to the class.  The connection is shared by every ``create()`` of this process to
    the same address (and closed with the process)."""
    key = (address, authkey, ssl)
    with _shared_lock:
        conn = _shared.get(key)
        if conn is None or conn.closed:
            options: dict[str, Any] = {}
            if authkey is not None:
                options["authkey"] = authkey
            if ssl is not None:
                options["ssl"] = ssl
            conn = _shared[key] = Connection(address, timeout=timeout, **options)
    return conn.create(progid, *args, **kwargs)
