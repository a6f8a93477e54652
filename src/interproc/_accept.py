"""Concurrent server handshakes: one slow client never stalls ``accept()``.

A listener's ``accept()`` hands every new connection to a
:class:`PendingHandshake` (the sans-I/O handshake of :mod:`._handshake`,
driven without blocking) and waits on all of them and on the listening socket
with one ``poll``; the first handshake to complete is returned.  A client
that stays silent or trickles its bytes holds one slot until its deadline and
is then dropped and logged on the ``interproc`` logger.

A listener's ``fileno()`` is the pool's epoll descriptor: readable when the
listening socket has a client or a pending handshake can make progress, so
``interproc.wait`` and ``interproc.serve`` (wait, then ``accept(timeout=0)``)
drive handshakes that take several round trips.  ``wake_after()`` tells such a
loop when to call ``accept()`` though nothing fired (a pending deadline).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import threading
import time
import weakref
from typing import Any

from . import _lifecycle
from ._errors import ChannelClosed, HandleClosed, InterprocError, PermissionDenied, Timeout, map_os_error
from ._framing import encode
from ._stream._channel import _WOULD_BLOCK, _advance, _handshake_decoder

log = _lifecycle.log  # logging.getLogger("interproc")
#: Handshakes in progress at once per listener; more clients wait in the backlog.
MAX_PENDING = 64


class PendingHandshake:
    """One accepted connection whose handshake is in progress, driven without blocking.

    ``step()`` does whatever the socket allows right now and returns True
    when the handshake is complete; it raises what the blocking handshake
    would (``ProtocolError``, ``PermissionDenied``, ``ChannelClosed``).
    """

    def __init__(self, io: Any, hs: Any, deadline: float, what: str, *, tls: bool = False, info: Any = None) -> None:
        self.io, self.hs, self.deadline, self.what, self.info = io, hs, deadline, what, info
        self.decoder = _handshake_decoder()
        self._tls_pending = tls
        self._want_write = False
        self._out: list[Any] = [] if tls else encode(hs.greeting())

    @property
    def fd(self) -> int:
        return self.io.rfd

    def events(self) -> int:
        return select.POLLIN | (select.POLLOUT if self._out or self._want_write else 0)

    def close(self) -> None:
        self.io.close()

    def step(self) -> bool:
        if self._tls_pending and not self._tls_step():
            return False
        while True:
            while self._out:
                try:
                    n = self.io.send(self._out, False)
                except _WOULD_BLOCK:
                    return False
                except OSError as exc:
                    raise ChannelClosed(f"{self.what}: the peer has gone ({exc})") from None
                self._out = _advance(self._out, n)
            if self.hs.done:
                return True
            frame = self.decoder.next_frame()
            if frame is None:
                try:
                    n = self.io.recv_into(self.decoder.get_buffer(), False)
                except _WOULD_BLOCK:
                    return False
                except OSError:
                    n = 0
                if n == 0:
                    self.decoder.eof()
                    raise ChannelClosed(f"{self.what}: the peer closed the connection during the handshake")
                self.decoder.buffer_updated(n)
                continue
            try:
                reply = self.hs.receive(frame)
            except Exception:
                verdict = getattr(self.hs, "reply", None)
                if verdict is not None:
                    try:
                        self.io.send(encode(verdict), False)
                    except OSError:
                        pass
                raise
            if reply is not None:
                self._out = encode(reply)

    def _tls_step(self) -> bool:
        sock = self.io.sock
        self._want_write = False
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLWantWriteError:
            self._want_write = True
            return False
        except ssl.SSLError as exc:
            raise PermissionDenied(f"TLS handshake with {self.what} failed: {exc}") from exc
        except OSError as exc:
            raise ChannelClosed(f"TLS handshake with {self.what}: {exc}") from exc
        self._tls_pending = False
        self._out = encode(self.hs.greeting())
        return True


def _after_fork_in_child() -> None:
    # A parent thread inside accept() held the pool's lock; it does not exist
    # here.  (The epoll set is shared with the parent: the child makes its own.)
    for pool in list(_POOLS):
        pool._lock = threading.Lock()
        pool._ep, pool._watched = None, {}


_POOLS: weakref.WeakSet = weakref.WeakSet()
os.register_at_fork(after_in_child=_after_fork_in_child)


class HandshakePool:
    """Runs the handshakes of a listener's new connections side by side.

    ``accept()`` accepts every connection that arrives, starts its handshake
    (``start(conn, peer)`` returns a :class:`PendingHandshake`) and drives
    them all with one ``poll``; the first to complete is returned through
    ``finish(pending)``, the others stay for the next call.  So one silent or
    trickling client cannot hold up anyone else: it only holds one slot
    until its own deadline, after which it is dropped and logged.  A client
    that breaks the protocol makes ``accept()`` raise (``ProtocolError``,
    ``PermissionDenied``), as a blocking handshake would; the listener goes on.
    """

    def __init__(self, what: str, start: Any, finish: Any, *, max_pending: int = MAX_PENDING) -> None:
        self.what, self._start, self._finish = what, start, finish
        self.max_pending = max_pending
        self._pending: list[PendingHandshake] = []
        self._lock = threading.Lock()
        self._ep: select.epoll | None = None  # made by the first fileno()
        self._watched: dict[int, tuple[Any, int]] = {}  # fd -> (owner, events) registered in _ep
        _POOLS.add(self)

    def __len__(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        pending, self._pending = self._pending, []
        for p in pending:
            p.close()
        ep, self._ep = self._ep, None
        if ep is not None:
            ep.close()

    def _accepting(self, may_accept: Any) -> bool:
        return len(self._pending) < self.max_pending and (may_accept is None or may_accept())

    def fileno(self, sock: socket.socket, may_accept: Any = None) -> int:
        """An epoll descriptor, readable when ``accept()`` can make progress:
        a new client on ``sock`` (while there is room) or a pending handshake
        whose socket is ready.  Re-synced on every call (call it before each
        wait, as ``interproc.wait`` does) — except while another thread is
        inside ``accept()``, which is driving the handshakes itself."""
        if not self._lock.acquire(False):
            return self._ep.fileno() if self._ep is not None else sock.fileno()
        try:
            if self._ep is None:
                self._ep = select.epoll()
            # fd -> (whose it is, events): a number closed and reused by a new
            # connection is registered afresh (epoll forgot the closed one).
            want: dict[int, tuple[Any, int]] = {p.fd: (p, p.events()) for p in self._pending}
            if self._accepting(may_accept):
                want[sock.fileno()] = (sock, select.POLLIN)
            ep = self._ep
            for fd, (who, _) in self._watched.items():
                if want.get(fd, (None,))[0] is not who:
                    try:
                        ep.unregister(fd)
                    except OSError:  # closed already (epoll forgot it then)
                        pass
            for fd, (who, events) in want.items():
                old = self._watched.get(fd)
                if old == (who, events):
                    continue
                try:
                    if old is not None and old[0] is who:
                        ep.modify(fd, events)
                    else:
                        ep.register(fd, events)
                except FileNotFoundError:
                    ep.register(fd, events)
                except FileExistsError:
                    ep.modify(fd, events)
            self._watched = want
            return ep.fileno()
        finally:
            self._lock.release()

    def wake_after(self, may_accept: Any = None) -> float | None:
        """Seconds until ``accept()`` has work though no descriptor fires: the
        earliest pending deadline, or 0.1 s while there is no room for new
        clients (to notice room freed by a channel's close); None: nothing."""
        now = time.monotonic()
        wake = min([p.deadline - now for p in self._pending], default=None)
        if not self._accepting(may_accept):
            wake = 0.1 if wake is None else min(wake, 0.1)
        return None if wake is None else max(0.0, wake)

    def _drop(self, p: PendingHandshake, why: str) -> None:
        self._pending.remove(p)
        p.close()
        log.warning("%s: dropped a connection (%s): %s", self.what, p.what, why)

    def accept(self, get_sock: Any, deadline: float | None, may_accept: Any = None, wait_room: Any = None) -> Any:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._lock.acquire(timeout=-1 if left is None else left):
            raise Timeout(f"accept on {self.what} timed out")
        try:
            return self._accept(get_sock, deadline, may_accept, wait_room)
        finally:
            self._lock.release()

    def _accept(self, get_sock: Any, deadline: float | None, may_accept: Any, wait_room: Any) -> Any:
        idle = False
        while True:
            sock = get_sock()
            if sock is None:
                self.close()
                raise HandleClosed(f"accept on {self.what} after its close()")
            now = time.monotonic()
            for p in [p for p in self._pending if p.deadline <= now]:
                self._drop(p, "handshake not completed in time")
            accepting = self._accepting(may_accept)
            if not accepting and not self._pending and wait_room is not None:
                wait_room(deadline)  # Timeout when no room frees up in time
                continue
            wake = min([p.deadline for p in self._pending], default=None)
            if not accepting and wait_room is not None:
                wake = min(wake, now + 0.1) if wake is not None else now + 0.1  # notice freed room
            if deadline is not None:
                # Past the deadline, one more round without waiting (so
                # accept(timeout=0) drives whatever is ready); a quiet one ends it.
                if now >= deadline and idle:
                    raise Timeout(f"accept on {self.what} timed out")
                wake = deadline if wake is None else min(wake, deadline)
            poller = select.poll()
            lfd = sock.fileno()
            if accepting:
                poller.register(lfd, select.POLLIN)
            by_fd = {}
            for p in self._pending:
                poller.register(p.fd, p.events())
                by_fd[p.fd] = p
            ms = None if wake is None else max(0, int((wake - now) * 1000 + 0.999))
            fired = poller.poll(ms)
            idle = not fired
            for fd, _ in fired:
                if fd == lfd:
                    self._accept_new(sock, may_accept)
                    continue
                p = by_fd[fd]
                if p not in self._pending:
                    continue
                try:
                    done = p.step()
                except ChannelClosed as exc:
                    self._pending.remove(p)
                    p.close()
                    log.debug("%s: a client left before its handshake: %s", self.what, exc)
                    continue
                except BaseException as exc:
                    self._pending.remove(p)
                    p.close()
                    log.warning("%s: handshake failed (%s), connection refused: %s", self.what, p.what, exc)
                    raise
                if done:
                    self._pending.remove(p)
                    return self._finish(p)

    def _accept_new(self, sock: socket.socket, may_accept: Any) -> None:
        while self._accepting(may_accept):
            try:
                conn, peer = sock.accept()
            except _WOULD_BLOCK:
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise map_os_error(exc, f"accept on {self.what}") from exc
            try:
                p = self._start(conn, peer)
            except ChannelClosed:
                continue
            except InterprocError as exc:
                log.warning("%s: handshake failed (client %s), connection refused: %s", self.what, peer or "a local peer", exc)
                raise
            self._pending.append(p)  # its greeting goes out when poll says writable
