"""The blocking server: ``rpc.Server(obj, address).start()``.

The accept loop is ``interproc.serve``'s; each connection gets an
:class:`Endpoint` on the thread serve gives it (more threads while calls on
that connection overlap, up to ``workers``).  A bad
peer (failed handshake, junk bytes) costs only its own connection.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .._address import listen as _listen
from .._errors import ChannelClosed, HandleClosed, ProtocolError, Timeout
from .._serve import Server as _ServeLoop, serve as _serve
from ._dispatch import Exposed
from ._endpoint import Endpoint
from .._nats import is_nats
from ._lines import LineListener, is_line_address
from ._nats import NatsService
from ._protocol import AVAILABLE, Protocol


class _PointToPoint:
    """A serial line has no listener: its one channel is the one connection."""

    def __init__(self, address: str, options: dict[str, Any]) -> None:
        from .._address import connect

        self.address = address
        self._channel: Any = connect(address, **options)
        self._given = False
        self._closed = threading.Event()

    def accept(self, *, timeout: float | None = None) -> Any:
        if not self._given:
            self._given = True
            return self._channel
        if self._closed.wait(timeout):
            raise HandleClosed("the server was closed")
        raise Timeout("a serial line carries one connection")

    def close(self) -> None:
        self._closed.set()
        if not self._given:
            self._channel.close()


class Server:
    """Expose ``obj``'s public methods at ``address`` (``**options`` go to ``interproc.listen``).

    ``workers`` bounds the threads per connection that run overlapping calls (0: one
    call at a time, in order); ``tracebacks=False`` keeps the server's traceback text
    out of error answers (the type and message still go); ``codecs`` limits what
    a client may negotiate (default: msgpack when installed, and json).
    """

    def __init__(self, obj: Any, address: str, *, workers: int = 16, codecs: tuple[str, ...] | None = None,
                 tracebacks: bool = True, **options: Any) -> None:
        self.exposed = Exposed(obj)
        self.workers = workers
        self.tracebacks = tracebacks
        self._nats: NatsService | None = None
        if is_nats(address):
            # Request/reply on a broker: no listener, no connections; servers share a queue group.
            self._nats = NatsService(self.exposed, address, workers=workers, codecs=codecs or AVAILABLE,
                                     tracebacks=tracebacks, **options)
            self.address = address
            self._lock = threading.Lock()
            self._endpoints: set[Endpoint] = set()
            self._server: _ServeLoop | None = None
            self._closed = False
            return
        self._plain = is_line_address(address)
        self._codecs = ("json",) if self._plain else (codecs or AVAILABLE)
        if self._plain:
            self._listener: Any = LineListener(address, **options)
        elif address.lower().startswith("serial://"):
            self._listener = _PointToPoint(address, options)
        else:
            self._listener = _listen(address, **options)
        self.address = self._listener.address
        self._lock = threading.Lock()
        self._endpoints = set()
        self._server = None
        self._closed = False

    @property
    def methods(self) -> list[str]:
        """The names a client may call."""
        return self.exposed.names

    def start(self) -> Server:
        """Serve in a background thread; returns the server."""
        if self._nats is not None:
            self._nats.start()
            return self
        with self._lock:
            if self._server is None and not self._closed:
                # The one accept loop of interproc (a thread per connection, close()
                # wakes it at once); each connection's thread serves its Endpoint.
                self._server = _serve(self._listener, self._handle)
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until ``close()`` (from another thread) or Ctrl-C (which
        closes the server and returns)."""
        if self._nats is not None:
            self._nats.start()
            while not self._closed:
                time.sleep(0.2)  # the calls run on the service's pool; this thread only waits
            return
        self.start()
        try:
            if self._server is not None:
                self._server.serve_forever()  # Ctrl-C closes the accept loop and returns
        finally:
            self.close()  # every connection too (idempotent after a close() from elsewhere)

    def _handle(self, channel: Any) -> None:
        ep = Endpoint(channel, exposed=self.exposed, protocol=Protocol(codecs=self._codecs),
                      workers=self.workers, tracebacks=self.tracebacks)
        with self._lock:
            if self._closed:
                ep.close()
                return
            self._endpoints.add(ep)
        try:
            ep.serve()
        except (ChannelClosed, HandleClosed, ProtocolError):
            pass  # the peer went away, or broke the framing: only its connection ends
        finally:
            ep.close()
            with self._lock:
                self._endpoints.discard(ep)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._endpoints)

    def close(self) -> None:
        """Stop accepting and close every connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            endpoints = list(self._endpoints)
        if self._nats is not None:
            self._nats.close()
            return
        for ep in endpoints:  # their serving threads end at once (a call running goes on)
            ep.close()
        if self._server is not None:
            self._server.close(timeout=1.0)
        self._listener.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<rpc.Server {self.address} {type(self.exposed.obj).__name__} methods={self.methods}>"
