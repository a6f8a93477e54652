"""The transport contract: what every channel and listener promises, sync and async.

Modelled on trio's ``_abc.py``: the two halves of a channel are separate
types, so a one-way end (an anonymous pipe end, a FIFO end, a mailslot
writer) is a :class:`SendChannel` or a :class:`ReceiveChannel` and has no
method that only refuses.  A duplex :class:`Channel` is both.  The asyncio
twins have the same methods as coroutines.

Errors every implementation raises the same way (the tree is in
:mod:`interproc._errors`):

* ``HandleClosed`` (a ``ValueError``): this handle was used after its own
  ``close()``.  Like a closed file; a bug in the caller.
* ``ChannelClosed`` (a ``ConnectionError``): the peer closed its end or
  died.  Messages it sent before are still delivered first.
* ``Timeout`` (a ``TimeoutError``): ``timeout=`` seconds passed first.
  ``timeout=None`` waits forever, ``0`` only tries.
* ``MessageTooLarge``: over the transport's or the channel's limit.
* ``ProtocolError``: the peer sent bytes that do not parse; the channel is
  closed, since a byte stream cannot be resynchronised.

A transport rarely subclasses these directly: :mod:`interproc._channel` has
the blocking implementation bases (codec, finalizer, ``HandleClosed``).
``isinstance(ch, interproc.ReceiveChannel)`` is the public way to ask what a
handle can do.
"""

from __future__ import annotations

import abc
from typing import Any, AsyncIterator, Iterator, TypeVar

from ._errors import ChannelClosed

__all__ = [
    "AsyncChannel",
    "AsyncListener",
    "AsyncReceiveChannel",
    "AsyncSendChannel",
    "Channel",
    "Listener",
    "ReceiveChannel",
    "SendChannel",
]


class _Handle(abc.ABC):
    """Something with a ``close()`` for this handle, usable in ``with``."""

    __slots__ = ()

    @abc.abstractmethod
    def close(self) -> None:
        """Release this handle (the peer then sees ``ChannelClosed``).

        Idempotent: closing twice does nothing.  Never raises for a peer
        that has already gone.
        """

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called on this handle."""
        return bool(getattr(self, "_closed", False))

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SendChannel(_Handle):
    """The sending half of a message channel; message boundaries are kept."""

    __slots__ = ()
    codec: Any  # an interproc._codec.Codec: how send_obj encodes

    @abc.abstractmethod
    def send(self, data: Any, *, timeout: float | None = None) -> None:
        """Send one whole message: any bytes-like object.

        Waits while the transport's buffer is full.  Raises ``HandleClosed``,
        ``ChannelClosed`` (the peer has gone), ``Timeout``,
        ``MessageTooLarge``.  A send cut short by its timeout on a byte
        stream closes the channel (half a frame cannot be taken back).
        """

    def send_obj(self, obj: Any, *, timeout: float | None = None) -> None:
        """``send(codec.encode(obj))``; raises what ``send`` raises and the
        codec's ``TypeError`` for an object it cannot encode."""
        self.send(self.codec.encode(obj), timeout=timeout)


class ReceiveChannel(_Handle):
    """The receiving half of a message channel."""

    __slots__ = ()
    codec: Any

    @abc.abstractmethod
    def recv(self, *, timeout: float | None = None) -> bytes:
        """Receive one whole message.

        Raises ``HandleClosed``, ``ChannelClosed`` once the peer has gone and
        every message it sent was received, ``Timeout``, ``ProtocolError``.
        """

    def recv_obj(self, *, timeout: float | None = None) -> Any:
        """``codec.decode(recv())``; raises what ``recv`` raises and
        ``ProtocolError`` for bytes the codec cannot decode."""
        return self.codec.decode(self.recv(timeout=timeout))

    def __iter__(self) -> Iterator[bytes]:
        """Yield messages until the peer closes the channel."""
        while True:
            try:
                yield self.recv()
            except ChannelClosed:
                return


class Channel(SendChannel, ReceiveChannel):
    """A duplex message channel: both halves on one handle."""

    __slots__ = ()


class Listener(_Handle):
    """Accepts channels at an address.

    ``address`` is the real address (the port a ``tcp://HOST:0`` listener
    got, the absolute path of a ``unix://`` one).
    """

    __slots__ = ()
    address: str

    @abc.abstractmethod
    def accept(self, *, timeout: float | None = None) -> Channel:
        """Wait for the next client and return its channel.

        Raises ``HandleClosed`` (this listener was closed, also when closed
        by another thread while waiting), ``Timeout``, and for a client that
        failed the handshake ``ProtocolError`` / ``PermissionDenied`` — the
        listener stays usable, so call ``accept()`` again.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Stop listening and release the address; waiting ``accept()``
        calls raise ``HandleClosed``.  Channels already accepted live on."""


# -- asyncio --------------------------------------------------------------------


_H = TypeVar("_H", bound="_AsyncHandle")


class _AsyncHandle(abc.ABC):
    __slots__ = ()

    @abc.abstractmethod
    def close(self) -> None:
        """Release this handle at once (no await needed); idempotent."""

    async def aclose(self) -> None:
        """``close()``, then let the event loop run the transport's callbacks."""
        self.close()

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called on this handle."""
        return bool(getattr(self, "_closed", False))

    async def __aenter__(self: _H) -> _H:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncSendChannel(_AsyncHandle):
    """The sending half of an asyncio message channel."""

    __slots__ = ()
    codec: Any

    @abc.abstractmethod
    async def send(self, data: Any, *, timeout: float | None = None) -> None:
        """Send one whole message; raises as :meth:`SendChannel.send`.
        Cancelling it may leave the message sent or not, never half sent on a
        message transport."""

    async def send_obj(self, obj: Any, *, timeout: float | None = None) -> None:
        """``await send(codec.encode(obj))``."""
        await self.send(self.codec.encode(obj), timeout=timeout)


class AsyncReceiveChannel(_AsyncHandle):
    """The receiving half of an asyncio message channel."""

    __slots__ = ()
    codec: Any

    @abc.abstractmethod
    async def recv(self, *, timeout: float | None = None) -> bytes:
        """Receive one whole message; raises as :meth:`ReceiveChannel.recv`.
        Cancelling it loses no message."""

    async def recv_obj(self, *, timeout: float | None = None) -> Any:
        """``codec.decode(await recv())``."""
        return self.codec.decode(await self.recv(timeout=timeout))

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self.recv()
        except ChannelClosed:
            raise StopAsyncIteration from None


class AsyncChannel(AsyncSendChannel, AsyncReceiveChannel):
    """A duplex asyncio message channel."""

    __slots__ = ()


class AsyncListener(_AsyncHandle):
    """Accepts asyncio channels at ``address``."""

    __slots__ = ()
    address: str

    @abc.abstractmethod
    async def accept(self, *, timeout: float | None = None) -> AsyncChannel:
        """The next client's channel; raises as :meth:`Listener.accept`."""
