"""Mailslots on a NATS server: ``Mailslot.create(name, scope="nats://HOST:PORT")``.

A server is a subscription on ``interproc.mailslot.<name>``: every server of
a name gets every message (a broadcast, as a domain mailslot), unless
servers join a ``queue_group``: then each message goes to exactly one
member of the group.  ``Mailslot.write(name, data, scope="nats://...")``
publishes; unlike a local mailslot there is no ``NotFound`` when nobody
reads (NATS, like a domain broadcast, does not tell the publisher).

Messages queue in this process (up to ``max_messages``; past that they are
counted in ``dropped``) until ``read()``.  While the connection to the
server is down, nats-py buffers writes and re-subscribes on reconnect;
messages published by others while this reader was cut off are lost, as on
any NATS core subject.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import deque
from typing import Any

from .. import _nats
from .._errors import ChannelClosed, MessageTooLarge, Timeout

KIND = "mailslot"


def _validate_group(group: str | None) -> str | None:
    if group is None:
        return None
    if not isinstance(group, str) or not group or any(c in group for c in " \t\r\n.*>"):
        raise ValueError(f"queue_group must be a non-empty name without spaces, '.', '*' or '>', not {group!r}")
    return group


class NatsReader:
    """The state behind a NATS mailslot server: subscription in, local queue out."""

    def __init__(self, name: str, address: str, max_message_size: int, max_messages: int, *,
                 queue_group: str | None, timeout: float | None, **creds: Any) -> None:
        server, path = _nats.split(address)
        if path:
            raise ValueError(f"mailslot scope {address!r}: give the server only (nats://HOST:PORT); "
                             "the mailslot's name is the first argument")
        self.subject = _nats.subject(KIND, name)
        self.queue_group = _validate_group(queue_group)
        self.max_message_size = max_message_size
        self.max_messages = max_messages
        self.conn = _nats.connection(server, timeout=timeout, **creds)
        self.what = f"mailslot {name!r} ({_nats.redact(server)})"
        self._cond = threading.Condition()
        self._queue: deque[bytes] = deque()
        self.dropped = 0  # over max_messages
        self.rejected = 0  # over max_message_size
        self._closed = False
        self._async_waiters: list[tuple[Any, Any]] = []  # (loop, future) of asyncio readers

        async def on_msg(msg: Any) -> None:
            data = msg.data
            with self._cond:
                if len(data) > self.max_message_size:
                    self.rejected += 1
                elif len(self._queue) >= self.max_messages:
                    self.dropped += 1
                else:
                    self._queue.append(data)
                    self._cond.notify()
                    self._wake_async()

        async def subscribe() -> Any:
            sub = await self.conn.nc.subscribe(self.subject, queue=self.queue_group or "", cb=on_msg)
            # The subscription is live at the server when create() returns.
            await self.conn.nc.flush(timeout=max(1, timeout or 5))
            return sub

        self._sub = _nats.loop_thread().run(subscribe(), None if timeout is None else timeout + 1,
                                            f"{self.what}: subscribe")

    def read(self, timeout: float | None) -> bytes:
        return _nats.pop_waiting(self._cond, self._queue, lambda: self._closed, timeout,
                                 f"{self.what} is closed", f"{self.what}: no message within {timeout} s")

    def _wake_async(self) -> None:
        """(Under the lock) a message arrived or the reader closed: wake the asyncio readers."""
        waiters, self._async_waiters = self._async_waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(None))

    async def aread(self, timeout: float | None) -> bytes:
        """:meth:`read` for an asyncio caller: waits on its own loop, never in a thread."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                if self._queue:
                    return self._queue.popleft()
                if self._closed:
                    raise ChannelClosed(f"{self.what} is closed")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise Timeout(f"{self.what}: no message within {timeout} s")
                fut = loop.create_future()
                self._async_waiters.append((loop, fut))
            try:
                await asyncio.wait_for(fut, left)
            except asyncio.TimeoutError:
                pass  # the loop head says Timeout (or takes a message that just came)

    def pending(self) -> tuple[int, int | None]:
        with self._cond:
            return len(self._queue), (len(self._queue[0]) if self._queue else None)

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
            self._wake_async()
        try:
            _nats.loop_thread().run(self._sub.unsubscribe(), 5, f"{self.what}: unsubscribe")
        except Exception:  # the connection is gone: the subscription went with it
            pass


def write(name: str, data: memoryview, address: str, *, timeout: float | None, **creds: Any) -> None:
    server, path = _nats.split(address)
    if path:
        raise ValueError(f"mailslot scope {address!r}: give the server only (nats://HOST:PORT)")
    subj = _nats.subject(KIND, name)
    conn = _nats.connection(server, timeout=timeout, **creds)
    if len(data) > conn.max_payload:
        raise MessageTooLarge(f"mailslot {name!r}: a {len(data)}-byte message is over the NATS server's "
                              f"max_payload ({conn.max_payload})")
    # In order with this process's other writes; on the wire promptly, and flushed at exit.
    conn.publish_nowait(subj, bytes(data), timeout=timeout)


from . import Mailslot, MailslotWriter, Pending, as_view  # noqa: E402  (imported lazily, after the package)


class NatsMailslotWriter(MailslotWriter):
    """A write-only channel publishing to a NATS mailslot (``Mailslot.open(name, scope="nats://...")``).

    As ``Mailslot.write`` on NATS: no ``NotFound`` when nobody reads (the
    broker does not tell a publisher), and ``send`` waits only while
    ``_nats.OUT_LIMIT`` bytes of this process are still on their way.
    """

    def __init__(self, name: str, address: str, *, codec: str = "json", timeout: float | None = None,
                 **creds: Any) -> None:
        server, path = _nats.split(address)
        if path:
            raise ValueError(f"mailslot scope {address!r}: give the server only (nats://HOST:PORT)")
        self.subject = _nats.subject(KIND, name)
        self.conn = _nats.connection(server, timeout=timeout, **creds)
        self.name = name
        self.scope = address
        super(MailslotWriter, self).__init__(codec=codec)

    def _resources(self) -> Any:
        return None

    @staticmethod
    def _finalize(resources: Any) -> None:
        pass  # the connection is the process's, shared: nothing of this writer's own to free

    def _send_bytes(self, data: Any, timeout: float | None) -> None:
        view = as_view(data)
        self.conn.check_size(len(view))
        self.conn.publish_nowait(self.subject, bytes(view), timeout=timeout)

    @property
    def max_message_size(self) -> int:
        return self.conn.max_payload

    def __repr__(self) -> str:
        return f"<MailslotWriter {self.name!r} scope={_nats.redact(self.scope)}{' closed' if self.closed else ''}>"


class NatsMailslot(Mailslot):
    """A mailslot server subscribed on a NATS server (``Mailslot.create(name, scope="nats://...")``)."""

    _reader: NatsReader

    @classmethod
    def _make(cls, name: str, address: str, max_message_size: int, max_messages: int, *,
              queue_group: str | None, timeout: float | None, **creds: Any) -> NatsMailslot:
        self = object.__new__(cls)
        self._reader = NatsReader(name, address, max_message_size, max_messages, queue_group=queue_group,
                                  timeout=timeout, **creds)
        self.name = name
        self.scope = address
        self.path = self._reader.subject
        self.max_message_size = max_message_size
        self.max_messages = max_messages
        self._receiver = None
        self._local = deque()
        self._closed = False
        # A dropped server unsubscribes (the reader, not the mailslot, holds the subscription).
        self._finalizer = weakref.finalize(self, self._reader.close)
        return self

    @property
    def subject(self) -> str:
        """The NATS subject this server is subscribed on."""
        return self._reader.subject

    @property
    def queue_group(self) -> str | None:
        return self._reader.queue_group

    def read(self, *, timeout: float | None = None) -> bytes:
        """The oldest message; waits up to ``timeout`` seconds (``Timeout``), None = forever."""
        self._check_open()
        return self._reader.read(timeout)

    async def _aread(self, timeout: float | None) -> bytes:
        """``interproc.aio.Mailslot.read`` of a NATS mailslot (waits on the caller's loop)."""
        self._check_open()
        return await self._reader.aread(timeout)

    def _read_nowait_batch(self) -> bytes | None:
        try:
            return self.read(timeout=0)
        except Timeout:
            return None

    def pending(self) -> Pending:
        self._check_open()
        return Pending(*self._reader.pending())

    @property
    def dropped(self) -> int:
        """Messages thrown away because ``max_messages`` were already queued."""
        return self._reader.dropped

    @property
    def rejected(self) -> int:
        """Messages thrown away for being over ``max_message_size``."""
        return self._reader.rejected

    def close(self) -> None:
        """Unsubscribe; unread messages are discarded."""
        if not self._closed:
            self._closed = True
            self._finalizer()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Mailslot {self.name!r} scope={_nats.redact(self.scope)} {state}>"
