"""The blocking driver of framed byte streams: pipes, AF_UNIX and TCP sockets.

Descriptors stay non-blocking.  Every read or write is tried first (the
fast path is one system call) and only ``EAGAIN`` leads to ``poll()`` with
the time left before the deadline, so ``timeout=`` is exact, nothing spins,
and Ctrl-C interrupts a wait (``poll`` returns ``EINTR``, Python runs the
signal handler, ``KeyboardInterrupt`` propagates).

:class:`StreamChannel` is a :class:`~interproc._channel.Channel` on top of
the sans-I/O :class:`~interproc._framing.FrameDecoder`; with ``framed=False``
it is a plain byte stream whose ``recv()`` returns whatever bytes arrived.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import ssl
import threading
import time
import weakref
from termios import FIONREAD
from typing import Any

from .._channel import Channel, ReceiveChannelBase, SendChannelBase
from .._deadline import deadline_of as deadline_of, poll_ms
from .._errors import ChannelClosed, HandleClosed, ProtocolError, Timeout, map_os_error
from .._framing import DEFAULT_MAX_MESSAGE, HEADER, FrameDecoder, encode
from .._handshake import MAX_HANDSHAKE_FRAME
from .._lifecycle import log

_WOULD_BLOCK = (BlockingIOError, InterruptedError)
_yield = os.sched_yield
_NOWAIT = socket.MSG_NOSIGNAL | socket.MSG_DONTWAIT
_CHUNK = 256 * 1024
_SMALL = 4096
_pack = HEADER.pack
_SIOCOUTQ = 0x5411          # = TIOCOUTQ: bytes (truesize) queued on a socket
_F_GETPIPE_SZ = 1032
_SLACK = 8192               # kernel bookkeeping per queued chunk, rounded up generously


def wait_fd(fd: int, events: int, deadline: float | None, what: str) -> None:
    """Wait until ``fd`` is ready for ``events`` or raise ``Timeout``."""
    poller = select.poll()
    poller.register(fd, events)
    while True:
        ms = poll_ms(deadline)
        if ms == 0:
            raise Timeout(f"{what} timed out")
        if poller.poll(ms):
            return


class FdIO:
    """I/O on a read fd and/or a write fd (pipes, FIFOs).

    ``block=True`` (no timeout) lets the system call sleep in the kernel, as
    a raw ``read``/``write`` would: one system call per message, and Ctrl-C
    still interrupts it (EINTR, then Python's signal handler raises).  With a
    timeout the descriptor is switched to O_NONBLOCK and waits go through
    ``poll``.  The switch happens only when the kind of call changes.
    """

    def __init__(self, rfd: int = -1, wfd: int = -1) -> None:
        self.rfd, self.wfd = rfd, wfd
        self._rblock = self._wblock = False
        for fd in {rfd, wfd} - {-1}:
            os.set_blocking(fd, False)

    def recv_into(self, buf: memoryview, block: bool = False) -> int:
        if block is not self._rblock:
            os.set_blocking(self.rfd, block)
            self._rblock = block
        return os.readv(self.rfd, [buf])

    def send(self, pieces: list[Any], block: bool = False) -> int:
        if block is not self._wblock:
            os.set_blocking(self.wfd, block)
            self._wblock = block
        return os.writev(self.wfd, pieces)

    def close(self) -> None:
        for attr in ("rfd", "wfd"):
            fd = getattr(self, attr)
            if fd >= 0:
                setattr(self, attr, -1)
                try:
                    os.close(fd)
                except OSError:
                    pass


class SockIO:
    """I/O on a connected stream socket (plain or TLS).

    A plain socket stays in blocking mode and each call says whether it may
    sleep (``MSG_DONTWAIT`` when a timeout applies), so a reader and a writer
    thread never fight over the O_NONBLOCK flag.  TLS needs a non-blocking
    socket throughout, so it always goes through ``poll``.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.tls = isinstance(sock, ssl.SSLSocket)
        # One SSL object must not be read and written by two threads at once
        # (OpenSSL state is shared); its calls never sleep, so a lock is cheap.
        self._tls_lock = threading.Lock()
        sock.setblocking(not self.tls)
        self.sock = sock
        self.rfd = self.wfd = sock.fileno()
        self._pid = os.getpid()  # a forked child's copy must not shut the connection down

    def recv_into(self, buf: memoryview, block: bool = False) -> int:
        if self.sock is None:  # closed by another thread while this one waited
            return 0
        if not self.tls:
            return self.sock.recv_into(buf, 0, 0 if block else socket.MSG_DONTWAIT)
        try:
            with self._tls_lock:
                return self.sock.recv_into(buf)
        except ssl.SSLWantReadError:
            raise BlockingIOError from None
        except ssl.SSLWantWriteError:
            # TLS renegotiation wants to write; the retry after poll does it.
            raise BlockingIOError from None
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return 0
        except ssl.SSLError as exc:
            raise ProtocolError(f"bad TLS data from the peer: {exc}") from exc

    def send(self, pieces: list[Any], block: bool = False) -> int:
        if self.sock is None:  # closed by another thread while this one waited
            raise OSError(errno.EBADF, "the channel was closed")
        if self.tls:
            try:
                with self._tls_lock:
                    return self.sock.send(pieces[0])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                raise BlockingIOError from None
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
                raise BrokenPipeError(errno.EPIPE, str(exc)) from None
        return self.sock.sendmsg(pieces, (), socket.MSG_NOSIGNAL if block else _NOWAIT)

    def close(self) -> None:
        if self.sock is not None:
            sock, self.sock = self.sock, None
            self.rfd = self.wfd = -1
            if os.getpid() == self._pid:
                try:
                    # shutdown wakes a thread blocked in recv on this socket; close
                    # alone does not.  Only the owner: shutdown acts on the shared
                    # connection, so a forked child's would cut off its parent.
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            try:
                sock.close()
            except OSError:
                pass


def _nbytes(piece: Any) -> int:
    return piece.nbytes if isinstance(piece, memoryview) else len(piece)


def _advance(pieces: list[Any], n: int) -> list[Any]:
    while n:
        first = pieces[0]
        size = len(first) if not isinstance(first, memoryview) else first.nbytes
        if n >= size:
            pieces.pop(0)
            n -= size
        else:
            pieces[0] = memoryview(first)[n:]
            n = 0
    return pieces


def write_all(io: Any, pieces: list[Any], deadline: float | None, what: str, on_partial=None) -> int:
    """Write every piece; ``Timeout`` if the deadline passes first.

    Returns the number of bytes written.  A ``Timeout`` carries ``written``:
    the bytes that did go (WriteFile's lpNumberOfBytesWritten).  A write cut
    short by the deadline leaves half a frame on the stream; the
    ``on_partial`` callback (closing the channel) runs before ``Timeout`` so
    the peer sees the end of the stream rather than garbage.
    """
    # Empty pieces would make the loop below spin forever: writev of nothing
    # returns 0 and _advance never drops them.  Nothing to write wakes nobody.
    pieces = [p for p in pieces if _nbytes(p)]
    total = 0
    block = deadline is None
    while pieces:
        try:
            n = io.send(pieces, block)
        except _WOULD_BLOCK:
            try:
                wait_fd(io.wfd, select.POLLOUT, deadline, what)
            except Timeout:
                if total and on_partial is not None:
                    on_partial()
                    exc = Timeout(f"{what} timed out after {total} bytes of the message; the channel was closed")
                else:
                    exc = Timeout(f"{what} timed out after writing {total} bytes")
                exc.written = total
                raise exc from None
            continue
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF):
                log.debug("%s: the peer has gone (%s)", what, errno.errorcode.get(exc.errno, exc.errno))
                raise ChannelClosed(f"{what}: the peer has gone") from exc
            raise map_os_error(exc, what) from exc
        total += n
        pieces = _advance(pieces, n)
    return total


def _room(io: Any) -> tuple[int, int] | None:
    """(bytes that can be written without blocking, buffer capacity), or None
    when the kernel does not say (TLS, exotic descriptors)."""
    if getattr(io, "tls", False) or io.wfd < 0:
        return None
    try:
        if isinstance(io, SockIO):
            # AF_UNIX and TCP charge queued data to the sender's SO_SNDBUF
            # (including the kernel's per-skb overhead, which SIOCOUTQ counts too).
            cap = io.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            used = int.from_bytes(fcntl.ioctl(io.wfd, _SIOCOUTQ, b"\0" * 4), "little")
        else:
            cap = fcntl.fcntl(io.wfd, _F_GETPIPE_SZ)
            used = int.from_bytes(fcntl.ioctl(io.wfd, FIONREAD, b"\0" * 4), "little")
            used = -(-used // 4096) * 4096  # pipes fill whole pages
    except OSError:
        return None
    return max(0, cap - used - _SLACK), cap - _SLACK


def write_message(io: Any, pieces: list[Any], deadline: float | None, what: str, on_partial=None) -> None:
    """Write one framed message: all of it or, on ``Timeout``, none of it.

    A message that fits the kernel buffer is written only once it fits
    whole (Win32: a message write is all or nothing), so a ``Timeout`` leaves
    the channel usable.  One bigger than the buffer can only go out while the
    peer reads: ``timeout=0`` refuses it at once; a longer timeout streams it,
    and if the deadline passes half-way the channel is closed (``on_partial``).
    """
    if deadline is not None:
        size = sum(_nbytes(p) for p in pieces)
        room = _room(io)
        if room is not None:
            free, cap = room
            if size > cap and deadline <= time.monotonic():
                exc = Timeout(f"{what}: the {size}-byte message does not fit the {cap}-byte pipe buffer "
                              f"without waiting for the reader; nothing was sent")
                exc.written = 0
                raise exc
            while size <= cap and size > free:
                try:
                    wait_fd(io.wfd, select.POLLOUT, deadline, what)
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Timeout(what)
                    free = (_room(io) or (size, cap))[0]
                    if size > free:
                        # POLLOUT says "some room"; a large message needs more.
                        time.sleep(min(0.002, left))
                except Timeout:
                    exc = Timeout(f"{what} timed out waiting for room for the {size}-byte message; "
                                  f"nothing was sent and the channel is still usable")
                    exc.written = 0
                    raise exc from None
    write_all(io, pieces, deadline, what, on_partial)


def read_some(io: Any, buf: memoryview, deadline: float | None, what: str) -> int:
    """Read into ``buf``; 0 means end of stream."""
    block = deadline is None
    while True:
        try:
            return io.recv_into(buf, block)
        except _WOULD_BLOCK:
            wait_fd(io.rfd, select.POLLIN, deadline, what)
        except OSError as exc:
            if exc.errno in (errno.ECONNRESET, errno.ENOTCONN, errno.EBADF, errno.ECONNABORTED):
                return 0
            raise map_os_error(exc, what) from exc


class StreamEnd:
    """What both halves of a byte-stream channel share: the I/O object, the
    decoder, the hot-path functions, ``fileno()`` and the finalizer.

    :class:`StreamChannel` is duplex; a one-way end (``PipeReader``,
    ``PipeWriter``) combines this with :class:`StreamReceiver` or
    :class:`StreamSender` alone, so it has no method that only refuses.
    """

    kind = "stream"

    def __init__(
        self,
        io: Any,
        *,
        name: str,
        framed: bool = True,
        codec: Any = "json",
        max_message_size: int = DEFAULT_MAX_MESSAGE,
        trusted: bool = True,
        decoder: FrameDecoder | None = None,
        on_close: Any = None,
    ) -> None:
        self._io = io
        self.name = name
        self.framed = framed
        self.max_message_size = max_message_size
        self.trusted = trusted
        self._decoder = decoder or FrameDecoder(max_message_size)
        self._raw = b""
        if framed:
            self._decoder.release(max_message_size)
        else:
            self._raw = self._decoder.take_raw()
        self._eof = False
        self._rbuf: bytearray | None = None
        self._tls = getattr(io, "tls", False)
        # Hot paths for calls without a timeout: one system call that may sleep.
        self._fast_recv = self._fast_send = None
        if isinstance(io, SockIO) and not self._tls:  # the socket is in blocking mode
            self._fast_recv = io.sock.recv_into
            self._fast_send = lambda frame, send=io.sock.send: send(frame, socket.MSG_NOSIGNAL)
        elif isinstance(io, FdIO):
            # Straight to the fd: if it is still in non-blocking mode the call
            # fails with EAGAIN, and the general path switches it to blocking.
            if io.rfd >= 0 and type(io) is FdIO:
                self._fast_recv = lambda buf, fd=io.rfd, readv=os.readv: readv(fd, [buf])
            if io.wfd >= 0:
                self._fast_send = lambda frame, fd=io.wfd, write=os.write: write(fd, frame)
        if not framed:
            self._fast_recv = None
        # Opt-in (RPC sets it): seconds to poll with non-blocking reads before a
        # recv sleeps.  A request/reply peer's answer often comes within tens of
        # microseconds, less than a kernel sleep and wake-up costs.  0: never spin.
        self.recv_spin = 0.0
        self._spin_recv = None
        self._spin_skip = self._spin_backoff = 0  # after spins that found nothing: skip a few
        if framed and isinstance(io, SockIO) and not self._tls:
            self._spin_recv = lambda buf, r=io.sock.recv_into: r(buf, 0, socket.MSG_DONTWAIT)
        self._on_close = on_close
        # One lock per direction: several threads may send (or receive) on one
        # channel, each message going out (coming in) whole.
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        _LIVE.add(self)
        super().__init__(codec=codec)

    def _resources(self) -> Any:
        return (self._io, self._on_close)

    @staticmethod
    def _finalize(resources: Any) -> None:
        io, on_close = resources
        io.close()
        if on_close is not None:
            on_close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("message" if self.framed else "byte")
        return f"<{type(self).__name__} {self.name} {state}>"

    def fileno(self) -> int:
        """The descriptor to wait on: the read end if there is one."""
        if self._closed:
            raise HandleClosed(f"fileno() of {self.name} after its close()")
        return self._io.rfd if self._io.rfd >= 0 else self._io.wfd

    def ready(self) -> bool:
        """True when ``recv()`` would not wait for the peer: a message is
        buffered already (read ahead with an earlier one), or bytes or the end
        of the stream are waiting in the kernel (``interproc.wait`` asks this)."""
        if self._decoder._frames or (not self.framed and self._raw) or self._eof:
            return True
        io = self._io
        if io.rfd < 0:
            return False
        if getattr(io, "tls", False) and io.sock is not None and io.sock.pending():
            return True
        poller = select.poll()
        poller.register(io.rfd, select.POLLIN)
        return bool(poller.poll(0))

    def detach(self) -> int:
        """Close this end but not its descriptor, and return the descriptor (the
        caller owns it now): how a pipe end moves to asyncio."""
        io = self._io
        if not isinstance(io, FdIO):
            raise TypeError(f"only a pipe end can be detached, not {self.name}")
        fd = io.rfd if io.rfd >= 0 else io.wfd
        io.rfd = io.wfd = -1
        self.close()
        return fd


class StreamSender(SendChannelBase):
    """Sending on a byte stream (mixed with :class:`StreamEnd`).

    Thread safety: one lock per direction (``_send_lock``, made by
    :class:`StreamEnd`), so several threads may send on one channel and each
    message goes out whole; uncontended it costs one acquire and release.
    """

    # -- messages --------------------------------------------------------
    def _send_bytes(self, data: Any, timeout: float | None) -> None:
        lock = self._send_lock
        if not lock.acquire(False):
            timeout = _wait_lock(lock, timeout, f"send on {self.name}")
        try:
            if not self.framed:
                view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
                if len(view):  # (self.write would take this lock again)
                    write_all(self._io, [view], deadline_of(timeout), f"write on {self.name}")
                return
            if timeout is None and type(data) is bytes and len(data) <= _SMALL <= self.max_message_size \
                    and self._fast_send is not None:
                # Fast path for the common small message: one join, one system call.
                frame = _pack(len(data)) + data
                try:
                    n = self._fast_send(frame)
                except OSError:
                    n = 0  # write_all below retries and reports the error properly
                if n != len(frame):  # a signal can cut a blocking write short
                    write_all(self._io, [memoryview(frame)[n:]], None, f"send on {self.name}", self._cut)
                return
            write_message(self._io, encode(data, self.max_message_size), deadline_of(timeout),
                          f"send on {self.name}", self._cut)
        finally:
            lock.release()

    def _cut(self) -> None:
        self._abort("a send timed out in the middle of a message")

    def write(self, data: Any, *, timeout: float | None = None) -> int:
        """Write all of ``data`` to the raw stream; returns its length.

        If ``timeout`` passes first, ``Timeout`` is raised with ``written``:
        how many bytes did go (the rest did not).
        """
        if self._closed:
            raise self._handle_closed("write")
        view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
        if not len(view):
            return 0  # nothing to write wakes no reader (Win32 WriteFile of 0 bytes on a byte pipe)
        lock = self._send_lock
        if not lock.acquire(False):
            timeout = _wait_lock(lock, timeout, f"write on {self.name}")
        try:
            return write_all(self._io, [view], deadline_of(timeout), f"write on {self.name}")
        finally:
            lock.release()


class StreamReceiver(ReceiveChannelBase):
    """Receiving on a byte stream (mixed with :class:`StreamEnd`); one lock
    for the receive direction, as :class:`StreamSender` has for sending."""

    def _recv_bytes(self, timeout: float | None) -> bytes:
        lock = self._recv_lock
        if not lock.acquire(False):
            timeout = _wait_lock(lock, timeout, f"recv on {self.name}")
            if self._closed:
                lock.release()
                raise self._handle_closed("recv")
        try:
            return self._recv_locked(timeout)
        finally:
            lock.release()

    def _recv_locked(self, timeout: float | None) -> bytes:
        if not self.framed:
            data = self._read_locked(_CHUNK, timeout)
            if not data:
                raise ChannelClosed(f"{self.name}: the peer closed the stream")
            return data
        dec = self._decoder
        frames = dec._frames
        if frames:
            return frames.popleft()
        if self.recv_spin > 0 and self._spin_recv is not None and not self._eof and timeout != 0:
            if self._spin_skip:
                self._spin_skip -= 1
            else:
                frame = self._spin_for_frame(self.recv_spin if timeout is None else min(self.recv_spin, timeout))
                if frame is not None:
                    self._spin_backoff = 0
                    return frame
                # The peer was not that quick (idle, or no CPU free to run it while
                # we spin): spin again only after 1, 2, 4 ... 64 plain waits.
                self._spin_skip = self._spin_backoff = min(64, 2 * self._spin_backoff or 1)
        if timeout is None and self._fast_recv is not None and not self._eof:
            # Hot path: sleep in the kernel until bytes come, parse, return.
            # Anything unusual (EOF, an error, a bad frame) falls through to
            # the general loop below, which reports it.
            try:
                while dec.read_from(self._fast_recv):
                    if frames:
                        return frames.popleft()
                    if dec._error is not None:
                        break
            except OSError:
                pass
        try:
            frame = dec.next_frame()
            if frame is not None:
                return frame
            if self._eof:
                raise ChannelClosed(f"{self.name}: the peer closed the channel")
            deadline = deadline_of(timeout)
            while True:
                n = read_some(self._io, dec.get_buffer(), deadline, f"recv on {self.name}")
                if n == 0:
                    if self._closed:  # close() from another thread woke this recv
                        raise self._handle_closed("recv")
                    self._eof = True
                    log.debug("%s: the peer closed the channel", self.name)
                    dec.eof()
                    raise ChannelClosed(f"{self.name}: the peer closed the channel")
                dec.buffer_updated(n)
                frame = dec.next_frame()
                if frame is not None:
                    return frame
        except ProtocolError as exc:
            # The stream cannot be resynchronised after a bad frame.
            log.warning("%s: protocol error, channel closed: %s", self.name, exc)
            self._abort(f"a protocol error ({exc})")
            raise

    def _spin_for_frame(self, seconds: float) -> bytes | None:
        """Non-blocking reads for up to ``seconds``: a whole frame, or None (the
        normal path then waits, and reports an end of stream or error it meets)."""
        dec, recv, clock = self._decoder, self._spin_recv, time.perf_counter
        frames = dec._frames
        end = clock() + seconds
        while True:
            try:
                n = dec.read_from(recv)
            except _WOULD_BLOCK:
                if clock() >= end:
                    return None
                _yield()  # a peer waiting for this CPU runs first (else the spin only delays it)
                continue
            except OSError:
                return None
            if frames:
                return frames.popleft()
            if n == 0 or dec._error is not None:
                return None

    # -- byte stream -----------------------------------------------------
    def read(self, n: int = -1, *, timeout: float | None = None) -> bytes:
        """Up to ``n`` bytes of the raw stream (``b""`` at end of stream)."""
        if self._closed:
            raise self._handle_closed("read")
        lock = self._recv_lock
        if not lock.acquire(False):
            timeout = _wait_lock(lock, timeout, f"read on {self.name}")
        try:
            return self._read_locked(n, timeout)
        finally:
            lock.release()

    def _read_locked(self, n: int, timeout: float | None) -> bytes:
        if n < 0:
            n = _CHUNK
        if self.framed and not self._raw:
            self._raw = self._decoder.take_raw()  # bytes a recv() read ahead
        if self._raw:
            data, self._raw = self._raw[:n], self._raw[n:]
            return data
        if self._eof or n == 0:
            return b""
        if self._rbuf is None or len(self._rbuf) < n:
            self._rbuf = bytearray(max(n, 4096))  # reused: a fresh big buffer per read page-faults
        view = memoryview(self._rbuf)[:n]
        got = read_some(self._io, view, deadline_of(timeout), f"read on {self.name}")
        if got == 0:
            self._eof = True
        return view[:got].tobytes()


class StreamChannel(StreamEnd, StreamSender, StreamReceiver, Channel):
    """A Channel over a byte stream, framed (message mode) or raw (byte mode)."""


# A thread of the parent that was inside send/recv when another thread forked
# does not exist in the child, but its lock would stay taken there forever:
# the child gets fresh locks (os.register_at_fork) for every live channel.
_LIVE: weakref.WeakSet = weakref.WeakSet()


def _fresh_locks_after_fork() -> None:
    for end in list(_LIVE):
        end._send_lock, end._recv_lock = threading.Lock(), threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks_after_fork)


def _wait_lock(lock: Any, timeout: float | None, what: str) -> float | None:
    """Wait for another thread's call in the same direction; returns the time left."""
    if timeout is None:
        lock.acquire()
        return None
    start = time.monotonic()
    if not lock.acquire(timeout=max(0.0, timeout)):
        raise Timeout(f"{what} timed out waiting for another thread's call to finish")
    return max(0.0, timeout - (time.monotonic() - start))


def _handshake_decoder() -> FrameDecoder:
    decoder = FrameDecoder()
    decoder.hold(MAX_HANDSHAKE_FRAME)
    return decoder


def run_client_handshake(io: Any, hs: Any, deadline: float | None, what: str) -> FrameDecoder:
    """Answer the server's greeting; returns the decoder for the channel."""
    decoder = _handshake_decoder()
    while not hs.done:
        reply = hs.receive(_read_frame(io, decoder, deadline, what))
        if reply is not None:
            write_all(io, encode(reply), deadline, what)
    return decoder


def _read_frame(io: Any, decoder: FrameDecoder, deadline: float | None, what: str) -> bytes:
    while True:
        frame = decoder.next_frame()
        if frame is not None:
            return frame
        n = read_some(io, decoder.get_buffer(), deadline, what)
        if n == 0:
            decoder.eof()
            raise ChannelClosed(f"{what}: the peer closed the connection during the handshake")
        decoder.buffer_updated(n)
