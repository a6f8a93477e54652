"""The object server: ProgIDs -> classes, one Session per connection, leases.

A lease: every client pings every ``ping_interval`` seconds (any call counts
too); a connection silent for ``missed_pings`` intervals is closed and all
its references are released, as DCOM's OXID resolver does for a client
machine that stopped pinging.  A connection that closes (a client that
exits or is killed) releases its references at once.
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import threading
import time
from typing import Any, Iterable

from .._address import listen as _listen
from .._errors import ChannelClosed, HandleClosed, ProtocolError
from .._serve import Server as _ServeLoop, serve as _serve
from .._platform import current_process
from ._core import ClassInfo, Exports, Session, not_found
from ._listing import record_path, write_record

_PROGID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_numbers = itertools.count(1)


def _unlink(record: str) -> None:
    for path in (record, record + ".tmp"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class Registry:
    """What the blocking and the asyncio object servers share: ProgIDs, exports,
    lease terms and the ``interproc ls`` record (no I/O of its own)."""

    def __init__(self, *, ping_interval: float = 120.0, missed_pings: int = 3, tracebacks: bool = True) -> None:
        if not ping_interval > 0:
            raise ValueError(f"ping_interval must be > 0 seconds, not {ping_interval!r}")
        if not isinstance(missed_pings, int) or missed_pings < 1:
            raise ValueError(f"missed_pings must be an int >= 1, not {missed_pings!r}")
        self.ping_interval = float(ping_interval)
        self.missed_pings = missed_pings
        self.tracebacks = tracebacks
        self._classes: dict[str, type] = {}
        self._lock = threading.Lock()
        self._sessions: set[Any] = set()
        self.exports = Exports(on_change=self._changed)
        self._dirty = threading.Event()
        self._closed = False
        self.address: str = ""
        self._record = record_path(f"{os.getpid()}.{next(_numbers)}")

    def _start_record(self) -> None:
        self._write_record()
        atexit.register(_unlink, self._record)  # a process that exits without close()

    def _expired(self) -> list[Any]:
        """Sessions whose lease ran out (silent for ping_interval * missed_pings)."""
        lease = self.ping_interval * self.missed_pings
        now = time.monotonic()
        with self._lock:
            return [s for s in self._sessions if now - s.last_seen > lease]

    # -- classes -----------------------------------------------------------------
    def register(self, progid: str, cls: type, *, interfaces: Iterable[Any] = ()) -> None:
        """Make ``cls`` creatable as ``progid`` (e.g. ``"Shapes.Circle"``); ``interfaces``
        (classes or Protocols, or names) are what ``query_interface`` grants besides
        the class's own bases."""
        if not isinstance(progid, str) or not _PROGID.fullmatch(progid):
            raise ValueError(f"ProgID {progid!r} must be dotted identifiers, e.g. 'Shapes.Circle'")
        if not isinstance(cls, type):
            raise TypeError(f"register() takes a class, not {type(cls).__name__}")
        names = {i if isinstance(i, str) else i.__name__ for i in interfaces}
        ClassInfo.declared.setdefault(cls, set()).update(names)
        ClassInfo.of(cls)
        with self._lock:
            self._classes[progid] = cls
        self._changed()

    def _create(self, progid: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        cls = self._classes.get(progid)
        if cls is None:
            raise not_found(progid)
        return cls(*args, **kwargs)

    def classes(self) -> list[dict[str, Any]]:
        """Registered ProgIDs with their class names and live object counts."""
        counts = self.exports.counts()
        with self._lock:
            items = sorted(self._classes.items())
        return [{"progid": p, "class": c.__name__, "live": counts.get(c.__name__, 0),
                 "interfaces": sorted(ClassInfo.of(c).interfaces)} for p, c in items]

    @property
    def live(self) -> int:
        """Objects held by clients right now."""
        return len(self.exports)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _hello(self) -> dict[str, Any]:
        return {"ping_interval": self.ping_interval, "missed_pings": self.missed_pings}

    def _changed(self) -> None:
        self._dirty.set()  # written by the keeper, at most twice a second

    def _write_record(self) -> None:
        self._dirty.clear()
        if self._closed:
            return
        me = current_process()
        record = {"address": self.address, "pid": me.pid, "start": me.start,
                  "classes": {c["progid"]: {"class": c["class"], "live": c["live"]} for c in self.classes()}}
        try:
            write_record(self._record, record)
        except OSError:
            pass  # listing is a convenience: never let it stop serving


class Server(Registry):
    """Serve classes by ProgID at ``address`` (``**options``, e.g. ``authkey=``/``ssl=``,
    go to ``interproc.listen``).

    ``ping_interval`` (seconds) and ``missed_pings``: a client that sends nothing for
    ``ping_interval * missed_pings`` seconds loses its objects.  ``workers`` bounds
    the threads per connection that run overlapping calls; ``tracebacks=False`` keeps the
    server's traceback text out of error answers (type and message still go).
    """

    def __init__(self, address: str, *, ping_interval: float = 120.0, missed_pings: int = 3, workers: int = 16,
                 tracebacks: bool = True, **options: Any) -> None:
        super().__init__(ping_interval=ping_interval, missed_pings=missed_pings, tracebacks=tracebacks)
        self.workers = workers
        self._listener: Any = _listen(address, **options)
        self.address = self._listener.address
        self._threads: list[threading.Thread] = []
        self._server: _ServeLoop | None = None
        self._stop = threading.Event()
        self._start_record()

    # -- serving -------------------------------------------------------------------
    def start(self) -> Server:
        """Serve in background threads; returns the server."""
        with self._lock:
            if self._server is not None or self._closed:
                return self
            # The one accept loop of interproc (a thread per connection; close()
            # wakes it at once); the lease keeper is ours.
            self._server = _serve(self._listener, self._handle)
        t = threading.Thread(target=self._keeper, name="interproc-objects-lease", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until ``close()`` (from another thread) or Ctrl-C."""
        self.start()
        try:
            if self._server is not None:
                self._server.serve_forever()  # Ctrl-C closes the accept loop and returns
        finally:
            self.close()

    def _handle(self, channel: Any) -> None:
        session = Session(channel, self.exports, workers=self.workers, factory=self._create,
                          hello=self._hello, classes=self.classes, tracebacks=self.tracebacks)
        with self._lock:
            if self._closed:
                session.ep.close()
                return
            self._sessions.add(session)
        try:
            session.ep.serve()
        except (ChannelClosed, HandleClosed, ProtocolError, OSError):
            pass  # the peer went away (or its lease ran out): only its connection ends
        finally:
            with self._lock:
                self._sessions.discard(session)
            session.closed_by_peer()

    def _keeper(self) -> None:
        """Close connections whose lease ran out; keep the ``interproc ls`` record current."""
        period = min(self.ping_interval / 2, 0.5)
        while not self._stop.wait(period):
            for s in self._expired():
                s.ep.close()  # its serve thread ends and drops its references
            if self._dirty.is_set():
                self._write_record()

    # -- ending -------------------------------------------------------------------
    def close(self) -> None:
        """Stop accepting, close every connection (their objects are released)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sessions = list(self._sessions)
        self._stop.set()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(5)
        for s in sessions:
            s.closed_by_peer()
        if self._server is not None:
            self._server.close(timeout=1.0)
        self._listener.close()
        _unlink(self._record)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<objects.Server {self.address} classes={sorted(self._classes)} live={self.live}>"
