"""The Channel and Listener shapes every message transport shares.

A transport implements ``_send_bytes``, ``_recv_bytes`` and ``_close``; this
base class adds the rest of the contract: ``send``/``recv`` with timeouts,
``send_obj``/``recv_obj`` through a codec, ``closed``, the context manager,
iteration until the peer closes, and a finalizer for handles dropped
without ``close()``.
"""

from __future__ import annotations

from typing import Any, Iterator

from ._codec import Codec, get_codec
from ._errors import ChannelClosed
from ._lifecycle import finalizer, run_quietly


class Channel:
    """A duplex (or one-way) message channel.  Message boundaries are kept."""

    #: True when the peer is known: same uid checked by SO_PEERCRED, or
    #: authenticated by authkey/TLS.  Only then may ``pickle`` be used.
    trusted: bool = True
    codec: Codec

    def __init__(self, *, codec: str | Codec = "json") -> None:
        self._closed = False
        self.codec = get_codec(codec, trusted=self.trusted)
        # Dropped without close(): ResourceWarning, then released (as socket does).
        self._finalizer = finalizer(self, type(self)._finalize, self._resources(),
                                    what=f"{type(self).__name__} {getattr(self, 'name', '')}".rstrip())

    # -- what a transport provides ------------------------------------
    def _send_bytes(self, data: Any, timeout: float | None) -> None:
        raise NotImplementedError

    def _recv_bytes(self, timeout: float | None) -> bytes:
        raise NotImplementedError

    def _resources(self) -> Any:
        """Whatever ``_finalize`` needs to release; must not reference self."""
        return None

    @staticmethod
    def _finalize(resources: Any) -> None:
        """Release OS resources (called by close() and by the GC safety net)."""

    # -- the contract -------------------------------------------------
    def send(self, data: Any, *, timeout: float | None = None) -> None:
        """Send one message: any bytes-like object (bytes, memoryview, numpy array)."""
        if self._closed:
            raise ChannelClosed("send on a closed channel")
        self._send_bytes(data, timeout)

    def recv(self, *, timeout: float | None = None) -> bytes:
        """Receive one whole message; ``ChannelClosed`` once the peer has gone."""
        if self._closed:
            raise ChannelClosed("recv on a closed channel")
        return self._recv_bytes(timeout)

    def send_obj(self, obj: Any, *, timeout: float | None = None) -> None:
        self.send(self.codec.encode(obj), timeout=timeout)

    def recv_obj(self, *, timeout: float | None = None) -> Any:
        return self.codec.decode(self.recv(timeout=timeout))

    def set_codec(self, codec: str | Codec) -> None:
        self.codec = get_codec(codec, trusted=self.trusted)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            run_quietly(self._finalizer)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        """Yield messages until the peer closes the channel."""
        while True:
            try:
                yield self.recv()
            except ChannelClosed:
                return


class Listener:
    """Accepts channels at an address: ``accept(timeout=)``, ``address``, ``close()``."""

    address: str

    def accept(self, *, timeout: float | None = None) -> Channel:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
