"""The blocking DDE server driver: threads that move frames for :class:`ServerConversation`.

Each conversation has a reader thread (frames in; poke and execute handlers
run here) and a writer thread (frames out).  ``set()`` only updates state
under the server's lock and wakes writers, so a client that reads slowly
blocks nothing but its own writer, while its hot links keep only the newest
value (or, acknowledged, queue every value).
"""

from __future__ import annotations

import threading
from typing import Any

import interproc

from .._errors import HandleClosed, InterprocError, ProtocolError
from .._naming import Scope
from .. import _registry
from .._messages._names import collect_endpoint_sockets, list_endpoint_sockets
from ._protocol import Execute, Poke, ServerConversation, dump
from ._state import (  # noqa: F401  (re-exported: the asyncio driver, the CLI and older callers)
    FAST_MAX_CLIENTS, FAST_SLOT_SIZE, FAST_SLOTS, KIND, ServerState, admitted, service_names, service_path,
)


class _Conv:
    def __init__(self, server: "Server", ch: Any) -> None:
        self.server = server
        self.ch = ch
        self.proto = ServerConversation(server._store)
        if getattr(ch, "peer_credentials", None) is not None:  # a local client may take hot links from shm
            self.proto.fast_path = server._fast_path
            self.proto.hot_seq = server._hot_seq
        self.cond = threading.Condition(server._lock)
        self.closed = False
        self.watched: frozenset[tuple[str, str]] = frozenset()  # kept by ServerState.rewatch
        self.watching: frozenset[str] = frozenset()

    def run(self) -> None:
        """The conversation, in the thread ``interproc.serve`` gave it: frames in (poke and
        execute handlers run here); a writer thread of its own moves frames out."""
        writer = threading.Thread(target=self._write_loop, daemon=True,
                                  name=f"interproc dde {self.server.service} writer")
        writer.start()
        try:
            self._read_loop()
        finally:
            self.close()
            writer.join(timeout=2)

    def _read_loop(self) -> None:
        try:
            while True:
                frame = self.ch.recv()
                with self.cond:
                    events = self.proto.receive(frame)
                    if self.proto.watching is not self.watching:
                        self.server.rewatch(self)
                    self.cond.notify()
                for event in events:
                    self._handle(event)
        except ProtocolError as exc:
            # tell the client why before hanging up (this conversation only; the server goes on)
            self.server.protocol_errors += 1
            try:
                self.ch.send(dump({"op": "error", "error": "ProtocolError", "message": str(exc)}), timeout=1)
            except Exception:
                pass
        except Exception:
            pass  # the client left or died: end this conversation only

    def _handle(self, event: Poke | Execute) -> None:
        srv, topic = self.server, self.proto.topic or ""
        handler, refused = srv.handler_for(event, topic)
        error: BaseException | None = None
        result = None
        if handler is not None:
            try:
                out = srv.call_handler(handler, event, topic)
                refused, result = srv.after_handler(event, topic, out)
            except Exception as exc:
                error = exc
        with self.cond:
            self.proto.answer(event.id, error, refused=refused, result=result)
            self.cond.notify()

    def _write_loop(self) -> None:
        try:
            while True:
                with self.cond:
                    while not self.closed and (frame := self.proto.next_frame()) is None:
                        self.cond.wait()
                    if self.closed:
                        return
                self.ch.send(frame)
        except Exception:
            self.close()

    def close(self) -> None:
        with self.cond:
            if self.closed:
                return
            self.closed = True
            self.server.rewatch(self)
            self.cond.notify_all()
            self.server._convs.discard(self)
        self.ch.close()


class Server(ServerState):
    """A DDE service: topics of items, advise links, optional poke and execute handlers."""

    def __init__(self, service: str, *, host: str | None = None, authkey: bytes | None = None,
                 scope: Scope = "user", **listen_options: Any) -> None:
        super().__init__(service, scope)
        self._serving: list[interproc.Server] = []
        self._stopped = threading.Event()
        self._listeners = [interproc.listen(f"unix://{service_path(service, scope)}",
                                            mode=0o600 if scope == "user" else listen_options.get("mode", 0o660))]
        if host is not None:
            try:
                if host.lower().startswith(("nats://", "tls://")):
                    from ._nats_host import NatsHost

                    self._nats = NatsHost(self, host, **listen_options)
                else:
                    self._listeners.append(interproc.listen(host, authkey=authkey, **listen_options))
            except BaseException:
                self._listeners[0].close()
                raise
        #: where NetDDE clients connect (``host=``): the tcp:// address with its real port
        self.address = host if self._nats is not None else self._listeners[-1].address

    def __repr__(self) -> str:
        return f"<dde.Server {self.service!r}{' closed' if self._closed else ''}>"

    def _notify(self, conv: Any) -> None:
        conv.cond.notify()

    # -- serving --------------------------------------------------------------
    def start(self) -> "Server":
        """Serve in background threads (``interproc.serve``, one per listener); returns self."""
        with self._lock:
            if self._closed:
                raise HandleClosed(f"DDE server {self.service!r} is closed")
            if self._nats is not None:
                self._nats.start()
            if not self._serving:
                self._serving = [interproc.serve(lst, self._serve_one) for lst in self._listeners]
        return self

    def serve_forever(self) -> None:
        """Serve until ``close()`` (from a handler or another thread) or Ctrl-C."""
        self.start()
        try:
            while not self._stopped.wait(0.5):  # a slice, so that Ctrl-C gets through
                pass
        finally:
            self.close()

    def _serve_one(self, ch: Any) -> None:
        if not admitted(ch, self.scope):
            return  # another user's process cannot reach a user-scope service (serve closes ch)
        conv = _Conv(self, ch)
        with self._lock:
            if self._closed:
                return
            self._convs.add(conv)
        conv.run()

    @property
    def conversations(self) -> int:
        with self._lock:
            return len(self._convs)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the service: every conversation ends (clients get ``ChannelClosed``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            convs = list(self._convs)
        for conv in convs:
            conv.close()
        for srv in self._serving:
            srv.close(timeout=2)
        for lst in self._listeners:
            try:
                lst.close()
            except (InterprocError, OSError):
                pass
        if self._nats is not None:
            self._nats.close()
        self._close_pubs()
        self._stopped.set()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


_registry.register(KIND, lambda: list_endpoint_sockets(KIND), lambda: collect_endpoint_sockets(KIND))
