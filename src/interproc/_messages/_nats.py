"""Window messages through a NATS server: ``Window("editor", host="nats://HOST:PORT")``.

A window subscribes on ``interproc.window.<name>`` (in one queue group, so a
message reaches exactly one window of that name however many hosts have
one).  The messages are the frames of :mod:`._protocol`, unchanged:

* ``send_message`` / ``copy_data`` (``host="nats://..."``): NATS
  request/reply -- the window's reply frame comes back on the request's
  reply subject.  ``NotFound`` at once when no window of that name is
  subscribed (the broker says "no responders"); ``Timeout`` when it does not
  answer in time.
* ``post_message``: a plain publish, as PostMessage returns without waiting
  for the window.  So, unlike a local post, there is no ``QueueFull`` and no
  ``NotFound``: a post to a full queue or to no window is dropped (the
  window's :class:`NatsPort` counts the first kind in ``posts_dropped``).

Senders over NATS are remote: they cannot hand over shared memory, so a
frame that names a segment is a ``ProtocolError``, never mapped.  The
sender's pid and uid are unknown (0 and -1), as over tcp://.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .. import _nats
from .._errors import ProtocolError, Timeout
from ._protocol import (
    BAD_FRAME, F_SHM, FULL, POST, SenderCore, encode_reply, encode_request, missing_window, parse_header,
)

KIND = "window"
QUEUE_GROUP = "interproc-window"


def _server_of(address: str) -> str:
    server, path = _nats.split(address)
    if path:
        raise ValueError(f"window host {address!r}: give the NATS server only (nats://HOST:PORT); "
                         "the window's name is the first argument")
    return server


class _ReplyTo:
    """Where a window's reply goes: the request's reply subject (nowhere for a post)."""

    __slots__ = ("conn", "subject")

    def __init__(self, conn: _nats.Connection, subject: str) -> None:
        self.conn, self.subject = conn, subject

    def send(self, frame: bytes) -> None:
        if self.subject:
            self.conn.publish_nowait(self.subject, bytes(frame), timeout=5)


class _AReplyTo(_ReplyTo):
    """The same, for an ``AsyncWindow`` (it awaits ``send``; handing over never waits long)."""

    __slots__ = ()

    async def send(self, frame: bytes) -> None:  # type: ignore[override]
        _ReplyTo.send(self, frame)


class NatsPort:
    """A window's subscription on the broker (made by ``Window(..., host="nats://...")`` and
    ``AsyncWindow``): each message goes to ``window._core`` through ``deliver``."""

    def __init__(self, window: Any, address: str, *, timeout: float | None = None,
                 loop: asyncio.AbstractEventLoop | None = None, **creds: Any) -> None:
        self.subject = _nats.subject(KIND, window.name)
        self.conn = _nats.connection(_server_of(address), timeout=timeout, **creds)
        self.what = f"window {window.name!r} on {_nats.redact(self.conn.server)}"
        #: posts that found the queue full (a NATS post has nobody to tell)
        self.posts_dropped = 0
        self._window = window
        conn = self.conn

        async def on_msg(msg: Any) -> None:
            if loop is None:  # a blocking window: its core is guarded by its condition
                self._take(_ReplyTo(conn, msg.reply or ""), msg.data)
            else:  # an AsyncWindow: its core lives on its loop
                try:
                    loop.call_soon_threadsafe(self._take, _AReplyTo(conn, msg.reply or ""), msg.data)
                except RuntimeError:  # the window's loop is closed: as a closed window, no answer
                    pass

        async def subscribe() -> Any:
            sub = await conn.nc.subscribe(self.subject, queue=QUEUE_GROUP, cb=on_msg)
            await conn.nc.flush(timeout=5)
            return sub

        self._sub = _nats.loop_thread().run(subscribe(), None if timeout is None else timeout + 1,
                                            f"{self.what}: subscribe")

    def _take(self, reply_to: _ReplyTo, data: bytes) -> None:
        window = self._window
        try:
            if parse_header(data)[1] & F_SHM:
                raise ProtocolError("a sender over NATS named a shared-memory segment: only local senders can")
            answer = window._deliver(reply_to, data)
        except ProtocolError as exc:
            window.protocol_errors += 1
            answer = encode_reply(0, BAD_FRAME, {"message": str(exc)})
        if answer is not None:
            if not reply_to.subject and parse_header(answer)[1] == FULL:
                self.posts_dropped += 1
            _ReplyTo.send(reply_to, answer)

    def close(self, wait: bool = True) -> None:
        """Unsubscribe (``wait=False``: start to, for a caller on an event loop)."""
        try:
            if not wait:
                _nats.loop_thread().submit(self._sub.unsubscribe())
                return
            _nats.loop_thread().run(self._sub.unsubscribe(), 5, f"{self.what}: unsubscribe")
        except Exception:  # the connection is gone: so is the subscription
            pass


def _prepare(name: str, kind: int, msg: int, wparam: int, lparam: int, data: Any, timeout: float | None,
             abort_if_hung: bool, address: str) -> tuple[_nats.Connection, str, bytes]:
    """(connection, subject, request frame): what both the blocking and the asyncio sender need."""
    _nats.require()  # ImportError naming the extra, before anything else
    subject = _nats.subject(KIND, name)
    conn = _nats.connection(_server_of(address), timeout=timeout)
    frame = b"".join(bytes(p) for p in encode_request(kind, 1, msg, wparam, lparam, data=data,
                                                        abort_if_hung=abort_if_hung))
    conn.check_size(len(frame))
    return conn, subject, frame


async def _request(conn: _nats.Connection, subject: str, frame: bytes, name: str, timeout: float | None) -> Any:
    """(On the NATS loop) SEND: the window's reply frame, decoded to the handler's result."""
    from nats import errors

    try:
        reply = await conn.nc.request(subject, frame, timeout=3600 * 24 if timeout is None else timeout)
    except errors.NoRespondersError:
        raise missing_window(name) from None
    except (errors.TimeoutError, asyncio.TimeoutError):
        raise _late(name) from None
    except errors.Error as exc:
        raise _nats.translate(exc, f"window {name!r}") from exc
    SenderCore.reply_id(reply.data)  # a reply frame (or the window's "could not parse" as ProtocolError)
    return SenderCore.result(reply.data, name)


def _late(name: str) -> Timeout:
    return Timeout(f"window {name!r} did not answer within the timeout (is it pumping messages?)")


def call(name: str, kind: int, msg: int, wparam: int, lparam: int, *, data: Any, timeout: float | None,
         abort_if_hung: bool, address: str) -> Any:
    """SEND (request/reply, the handler's result) or POST (publish, None) to window ``name``."""
    conn, subject, frame = _prepare(name, kind, msg, wparam, lparam, data, timeout, abort_if_hung, address)
    if kind == POST:
        conn.publish_nowait(subject, frame, timeout=timeout)
        return None
    try:
        return _nats.loop_thread().run(_request(conn, subject, frame, name, timeout),
                                       None if timeout is None else timeout + 1, f"window {name!r}")
    except Timeout:
        raise _late(name) from None


async def acall(name: str, kind: int, msg: int, wparam: int, lparam: int, *, data: Any, timeout: float | None,
                abort_if_hung: bool, address: str) -> Any:
    """:func:`call` for asyncio code: the request runs on the NATS loop, this loop only awaits it."""
    if _nats.connected(_server_of(address)):
        prepared = _prepare(name, kind, msg, wparam, lparam, data, timeout, abort_if_hung, address)
    else:  # the first call connects, which may take a while: not on this loop
        prepared = await asyncio.to_thread(_prepare, name, kind, msg, wparam, lparam, data, timeout,
                                           abort_if_hung, address)
    conn, subject, frame = prepared
    if kind == POST:
        await _nats.wrap(conn.publish(subject, frame), timeout, f"window {name!r}")
        return None
    try:
        return await _nats.wrap(_request(conn, subject, frame, name, timeout), timeout, f"window {name!r}")
    except Timeout:
        raise _late(name) from None
