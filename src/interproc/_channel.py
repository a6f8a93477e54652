"""Blocking implementation bases for the contract of :mod:`interproc._contract`.

A transport implements ``_send_bytes`` and/or ``_recv_bytes`` and
``_resources``/``_finalize``; these bases add the rest: ``send``/``recv``
with the ``HandleClosed`` check, ``send_obj``/``recv_obj`` through a codec,
``closed``, the context manager, iteration until the peer closes, and a
finalizer for handles dropped without ``close()``.

One-way ends subclass :class:`SendChannelBase` or :class:`ReceiveChannelBase`
alone; duplex channels subclass :class:`Channel`.
"""

from __future__ import annotations

from typing import Any

from . import _contract
from ._codec import Codec, get_codec
from ._contract import Listener as Listener
from ._errors import ChannelClosed, HandleClosed
from ._lifecycle import finalizer, run_quietly


class _ChannelBase:
    """Lifecycle shared by both halves: codec, trust, close, GC safety net."""

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

    def _resources(self) -> Any:
        """Whatever ``_finalize`` needs to release; must not reference self."""
        return None

    @staticmethod
    def _finalize(resources: Any) -> None:
        """Release OS resources (called by close() and by the GC safety net)."""

    _broken: str | None = None

    def _abort(self, reason: str) -> None:
        """Close because the stream cannot go on (a bad frame, half a frame sent):
        later calls raise ``ChannelClosed`` with ``reason``, not ``HandleClosed``,
        since the user did not close it."""
        self._broken = reason
        self.close()

    def _handle_closed(self, what: str) -> Exception:
        name = getattr(self, "name", "a channel")
        if self._broken is not None:
            return ChannelClosed(f"{what} on {name}: the channel was closed after {self._broken}")
        return HandleClosed(f"{what} on {name}: this handle is closed (used after its close())")

    def set_codec(self, codec: str | Codec) -> None:
        self.codec = get_codec(codec, trusted=self.trusted)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            run_quietly(self._finalizer)


class SendChannelBase(_ChannelBase, _contract.SendChannel):
    def _send_bytes(self, data: Any, timeout: float | None) -> None:
        raise NotImplementedError

    def send(self, data: Any, *, timeout: float | None = None) -> None:
        """Send one message: any bytes-like object (bytes, memoryview, numpy array)."""
        if self._closed:
            raise self._handle_closed("send")
        self._send_bytes(data, timeout)


class ReceiveChannelBase(_ChannelBase, _contract.ReceiveChannel):
    def _recv_bytes(self, timeout: float | None) -> bytes:
        raise NotImplementedError

    def recv(self, *, timeout: float | None = None) -> bytes:
        """Receive one whole message; ``ChannelClosed`` once the peer has gone."""
        if self._closed:
            raise self._handle_closed("recv")
        return self._recv_bytes(timeout)


class Channel(SendChannelBase, ReceiveChannelBase, _contract.Channel):
    """A duplex message channel.  Message boundaries are kept."""
