"""One adapter per transport or peer library, all measured the same way.

A :class:`Peer` sets up a duplex *endpoint* between this process (the
measuring side) and a forked child (the echo/sink side):

1. ``prepare()`` runs in the parent before the fork (fds, queues, ...);
2. per message size, ``parent_pre(state, size)`` runs in the parent, then
   ``serve(state, size, pre)`` in the child returns ``(info, finish)``:
   ``info`` goes back to the parent over the control pipe and ``finish()``
   (e.g. ``accept()``) gives the child's endpoint;
3. ``connect(state, size, info, pre)`` in the parent gives its endpoint.

An endpoint has ``send(msg)``, ``recv(size)`` (returns something indexable
whose first byte can be read; it stays valid until the next ``recv``) and
``close()``.  Everything goes through each library's public API: interproc
transports through ``interproc.listen/connect`` and ``Mailslot``, so a
transport is measured as soon as its module exists.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import socket
import tempfile
import time
from typing import Any, Callable

AUTHKEY = b"interproc-bench"


#: How long a busy-polling endpoint waits for a stalled peer before giving up.
STALL_SECONDS = 10.0


class Peer:
    name = ""
    group = "peer"  # "interproc" or "peer"
    #: module that must be importable, else the peer is skipped
    requires: tuple[str, ...] = ()

    def available(self) -> str | None:
        """None if it can run here, else why not."""
        for mod in self.requires:
            try:
                found = importlib.util.find_spec(mod) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return f"not available ({mod} is not installed)"
        return None

    def prepare(self) -> Any:
        return None

    def parent_pre(self, state: Any, size: int) -> Any:
        return None

    def parent_pre_info(self, pre: Any) -> Any:
        """What of ``parent_pre``'s result the child needs (must pickle)."""
        return pre

    def serve(self, state: Any, size: int, pre: Any) -> tuple[Any, Callable[[], Any]]:
        raise NotImplementedError

    def connect(self, state: Any, size: int, info: Any, pre: Any) -> Any:
        raise NotImplementedError

    def child_started(self, state: Any) -> None:
        """In the parent, right after the fork (close the child's fds)."""

    def child_init(self, state: Any) -> None:
        """In the child, right after the fork (close the parent's fds)."""


def _unique(tag: str) -> str:
    _unique.n += 1  # type: ignore[attr-defined]
    return f"bench.{tag}.{os.getpid()}.{_unique.n}"  # type: ignore[attr-defined]


_unique.n = 0  # type: ignore[attr-defined]


# -- interproc transports --------------------------------------------------------

class _ChannelEndpoint:
    def __init__(self, ch: Any, closers: tuple = ()) -> None:
        self.ch, self.closers = ch, closers
        self.send = ch.send
        self._recv = ch.recv

    def recv(self, size: int) -> Any:
        return self._recv()

    def close(self) -> None:
        self.ch.close()
        for c in self.closers:
            c.close()


class InterprocAddress(Peer):
    """Any interproc transport reached through ``interproc.listen/connect``."""

    group = "interproc"

    def __init__(self, label: str, scheme: str, address: Callable[[], str], **options: Any) -> None:
        self.name, self.scheme, self.address, self.options = label, scheme, address, options

    def available(self) -> str | None:
        from .._address import SCHEMES

        module = SCHEMES[self.scheme]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            return f"not available ({module} is not in this build: {exc})"
        mod = importlib.import_module(module)
        if not hasattr(mod, "listen_address") or not hasattr(mod, "connect_address"):
            return f"not available ({module} has no listen/connect)"
        return None

    def serve(self, state, size, pre):
        import interproc

        lst = interproc.listen(self.address(), **self.options)
        return str(lst.address), lambda: _ChannelEndpoint(lst.accept(timeout=30), (lst,))

    def connect(self, state, size, info, pre):
        import interproc

        return _ChannelEndpoint(interproc.connect(info, timeout=30, **self.options))


def _unix_path() -> str:
    return "unix://" + os.path.join(tempfile.gettempdir(), _unique("unix") + ".sock")


class _MailslotEndpoint:
    def __init__(self, slot: Any, writer: Any) -> None:
        self.slot, self.writer = slot, writer
        self.send = writer.send
        self._read = slot.read

    def recv(self, size: int) -> Any:
        return self._read()

    def close(self) -> None:
        self.writer.close()
        self.slot.close()


class InterprocMailslot(Peer):
    """Two mailslots (one per direction): ``Mailslot.create`` + a writer."""

    name = "mailslot"
    group = "interproc"
    requires = ("interproc.mailslot",)

    def available(self) -> str | None:
        try:
            importlib.import_module("interproc.mailslot")
        except ImportError as exc:
            return f"not available (interproc.mailslot is not in this build: {exc})"
        return None

    @staticmethod
    def _create(size: int) -> Any:
        from interproc.mailslot import Mailslot

        return Mailslot.create(_unique("slot"), max_message_size=max(size, 64 * 1024))

    @staticmethod
    def _writer(name: str) -> Any:
        import interproc

        return interproc.connect(f"mailslot://{name}", timeout=30)

    def parent_pre(self, state, size):
        return self._create(size)

    def serve(self, state, size, pre_name):
        slot = self._create(size)
        return slot.name, lambda: _MailslotEndpoint(slot, self._writer(pre_name))

    def connect(self, state, size, info, pre_slot):
        return _MailslotEndpoint(pre_slot, self._writer(info))

    def parent_pre_info(self, pre: Any) -> Any:
        return pre.name


class _PubSubEndpoint:
    def __init__(self, pub: Any, sub: Any) -> None:
        self.pub, self.sub = pub, sub
        self.send = pub.send
        self._recv = sub.recv
        self._held = None

    def recv(self, size: int) -> Any:
        if self._held is not None:
            self._held.release()
        self._held = s = self._recv()
        return s.buf

    def close(self) -> None:
        if self._held is not None:
            self._held.release()
        self.sub.close()
        self.pub.close()


class InterprocPubSub(Peer):
    """interproc.shm.Publisher/Subscriber, one pair per direction (block policy)."""

    name = "interproc pub/sub"
    group = "interproc"

    @staticmethod
    def _geometry(size: int) -> tuple[int, int]:
        return size, (256 if size <= 4096 else 8)

    def parent_pre(self, state, size):
        from interproc.shm import Publisher

        return Publisher.create(_unique("pub"), *self._geometry(size))

    def parent_pre_info(self, pre: Any) -> Any:
        return pre.name

    def serve(self, state, size, pre_name):
        from interproc.shm import Publisher, Subscriber

        pub = Publisher.create(_unique("pub"), *self._geometry(size))
        sub = Subscriber.open(pre_name, timeout=30)
        return pub.name, lambda: _PubSubEndpoint(pub, sub)

    def connect(self, state, size, info, pre_pub):
        from interproc.shm import Subscriber

        ep = _PubSubEndpoint(pre_pub, Subscriber.open(info, timeout=30))
        # The child's subscriber joined before it answered; ours just joined:
        # both directions are connected before the first message.
        return ep


# -- peers ---------------------------------------------------------------------

class _StreamEndpoint:
    """A raw byte stream with fixed-size messages: exact reads, no framing."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd
        self._buf = bytearray(1 << 20)
        self._view = memoryview(self._buf)

    def send(self, msg: Any) -> None:
        view = memoryview(msg)
        while view:
            view = view[os.write(self.wfd, view):]

    def recv(self, size: int) -> Any:
        view, got = self._view, 0
        while got < size:
            n = os.readv(self.rfd, [view[got:size]])
            if n == 0:
                raise EOFError("peer closed")
            got += n
        return view[:size]

    def close(self) -> None:
        pass


class OsPipe(Peer):
    name = "os.pipe (raw)"

    def prepare(self):
        return os.pipe() + os.pipe()  # p2c read, p2c write, c2p read, c2p write

    def child_init(self, st):
        os.close(st[1])
        os.close(st[2])

    def child_started(self, st):
        os.close(st[0])
        os.close(st[3])

    def serve(self, st, size, pre):
        return None, lambda: _StreamEndpoint(st[0], st[3])

    def connect(self, st, size, info, pre):
        return _StreamEndpoint(st[2], st[1])


class SocketPair(Peer):
    name = "AF_UNIX socketpair (raw)"

    def prepare(self):
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def child_init(self, st):
        st[0].close()

    def child_started(self, st):
        st[1].close()

    def serve(self, st, size, pre):
        return None, lambda: _StreamEndpoint(st[1].fileno(), st[1].fileno())

    def connect(self, st, size, info, pre):
        return _StreamEndpoint(st[0].fileno(), st[0].fileno())


class _ConnEndpoint:
    def __init__(self, conn: Any) -> None:
        self.send = conn.send_bytes
        self._recv = conn.recv_bytes

    def recv(self, size: int) -> Any:
        return self._recv()

    def close(self) -> None:
        pass


class MpPipe(Peer):
    name = "multiprocessing.Pipe"

    def prepare(self):
        import multiprocessing

        return multiprocessing.Pipe(duplex=True)

    def child_init(self, st):
        st[0].close()

    def child_started(self, st):
        st[1].close()

    def serve(self, st, size, pre):
        return None, lambda: _ConnEndpoint(st[1])

    def connect(self, st, size, info, pre):
        return _ConnEndpoint(st[0])


class _ZmqEndpoint:
    def __init__(self, ctx: Any, sock: Any, path: str | None = None) -> None:
        self.ctx, self.sock, self.path = ctx, sock, path
        self.send = sock.send
        self._recv = sock.recv

    def recv(self, size: int) -> Any:
        return self._recv()

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()
        if self.path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


class ZmqPair(Peer):
    name = "pyzmq PAIR ipc://"
    requires = ("zmq",)

    def serve(self, st, size, pre):
        import zmq

        ctx = zmq.Context()
        sock = ctx.socket(zmq.PAIR)
        path = os.path.join(tempfile.gettempdir(), _unique("zmq") + ".ipc")
        sock.bind(f"ipc://{path}")

        def finish():
            return _ZmqEndpoint(ctx, sock, path)

        return f"ipc://{path}", finish

    def connect(self, st, size, info, pre):
        import zmq

        ctx = zmq.Context()
        sock = ctx.socket(zmq.PAIR)
        sock.connect(info)
        return _ZmqEndpoint(ctx, sock)


class _FifoEndpoint:
    def __init__(self, out_q: Any, in_q: Any) -> None:
        self.out_q, self.in_q = out_q, in_q
        self.send = out_q.put
        self._get = in_q.get

    def recv(self, size: int) -> Any:
        return self._get(timeout=60)

    def close(self) -> None:
        pass


class FasterFifo(Peer):
    name = "faster-fifo"
    requires = ("faster_fifo",)

    def prepare(self):
        from faster_fifo import Queue

        def raw(b: Any) -> Any:
            return b

        def load(mv: Any) -> bytes:
            return bytes(mv)

        # Raw bytes both ways (no pickling) so the queue itself is measured.
        return (Queue(max_size_bytes=64 << 20, dumps=raw, loads=load),
                Queue(max_size_bytes=64 << 20, dumps=raw, loads=load))

    def serve(self, st, size, pre):
        return None, lambda: _FifoEndpoint(st[1], st[0])

    def connect(self, st, size, info, pre):
        return _FifoEndpoint(st[0], st[1])


class _IoxEndpoint:
    def __init__(self, node: Any, pub: Any, sub: Any, size: int, loan: bool) -> None:
        import ctypes

        self.node, self.pub, self.sub, self.size, self.loan = node, pub, sub, size, loan
        self._type = ctypes.c_uint8 * size
        self._held = None

    def send(self, msg: Any) -> None:
        if self.loan:
            s = self.pub.loan_slice_uninit(len(msg))
            s.payload().as_memory_view().cast("B")[:] = msg
            s.assume_init().send()
        else:
            self.pub.send_copy(self._type.from_buffer_copy(msg))

    def recv(self, size: int) -> Any:
        if self._held is not None:
            self._held.delete()
            self._held = None
        receive = self.sub.receive
        s = receive()
        polls = 0
        give_up = None
        while s is None:  # iceoryx2's own benchmarks busy-poll too
            polls += 1
            if polls & 63 == 0:
                # As interproc's spin does: a peer woken onto our CPU must
                # not wait for our whole time slice.
                os.sched_yield()
                if polls & 0xFFFF == 0:  # bounded: a stalled peer is an error, not a hang
                    give_up = give_up or time.monotonic() + STALL_SECONDS
                    if time.monotonic() > give_up:
                        raise TimeoutError(f"the iceoryx2 peer sent nothing for {STALL_SECONDS} s")
            s = receive()
        if self.loan:
            self._held = s
            return s.payload().as_memory_view().cast("B")
        data = bytes(s.payload().contents)
        s.delete()
        return data

    def close(self) -> None:
        if self._held is not None:
            self._held.delete()
        self.sub.delete()
        self.pub.delete()


class Iceoryx2(Peer):
    """iceoryx2 publish/subscribe, one service per direction, lossless settings."""

    requires = ("iceoryx2",)

    def __init__(self, loan: bool) -> None:
        self.loan = loan
        self.name = f"iceoryx2 pub/sub ({'loan' if loan else 'copy'})"

    def _ports(self, send_name: str, recv_name: str, size: int) -> tuple[Any, Any, Any]:
        import ctypes

        import iceoryx2 as iox2

        iox2.set_log_level(iox2.LogLevel.Error)
        node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        payload = iox2.Slice[ctypes.c_uint8] if self.loan else ctypes.c_uint8 * size
        depth = 256 if size <= 4096 else 8

        def service(name: str) -> Any:
            return (node.service_builder(iox2.ServiceName.new(name)).publish_subscribe(payload)
                    .subscriber_max_buffer_size(depth).history_size(0).enable_safe_overflow(False)
                    .open_or_create())

        builder = service(send_name).publisher_builder()
        builder = builder.backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
        if self.loan:
            builder = builder.initial_max_slice_len(size)
        pub = builder.create()
        sub = service(recv_name).subscriber_builder().create()
        return node, pub, sub

    def parent_pre(self, st, size):
        base = _unique("iox").replace(".", "_")
        return base

    def parent_pre_info(self, pre: Any) -> Any:
        return pre

    def serve(self, st, size, base):
        node, pub, sub = self._ports(base + "/c2p", base + "/p2c", size)
        return None, lambda: _IoxEndpoint(node, pub, sub, size, self.loan)

    def connect(self, st, size, info, base):
        node, pub, sub = self._ports(base + "/p2c", base + "/c2p", size)
        return _IoxEndpoint(node, pub, sub, size, self.loan)


def builtin_peers() -> list[Peer]:
    """Every case ``interproc bench`` knows, interproc transports first."""
    return [
        InterprocAddress("shm://", "shm", lambda: f"shm://{_unique('shm')}"),
        InterprocAddress("pipe://", "pipe", lambda: f"pipe://{_unique('pipe')}"),
        InterprocAddress("unix://", "unix", _unix_path),
        InterprocAddress("tcp://", "tcp", lambda: "tcp://127.0.0.1:0", authkey=AUTHKEY),
        InterprocMailslot(),
        InterprocPubSub(),
        MpPipe(),
        OsPipe(),
        SocketPair(),
        ZmqPair(),
        Iceoryx2(loan=False),
        Iceoryx2(loan=True),
        FasterFifo(),
    ]
