"""What the window drivers share: data staging, admission, and the local-read plumbing.

``Bell`` and ``Cond`` let one thread sleep on the local connections and
still hear about messages queued by other threads (network readers, the
nats port) and about ``quit()``/``close()``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from .._errors import ProtocolError
from .._naming import Scope
from ..shm import SharedMemory
from ._protocol import Message


# -- what both drivers (this one and the asyncio one) share ------------------------

def admitted(ch: Any, scope: Scope) -> bool:
    """May this connection reach a window?  In the user scope, only this user's processes."""
    creds = getattr(ch, "peer_credentials", None)
    return scope != "user" or creds is None or creds.uid == os.getuid()


def attach_data(m: Message, scope: Scope) -> SharedMemory | None:
    """Map a large WM_COPYDATA's segment into ``m.data``; give the segment to :func:`detach_data`."""
    if m.shm is None:
        return None
    seg = SharedMemory.open(m.shm[0], scope=scope)
    if m.shm[1] > seg.size:
        seg.close()
        raise ProtocolError(f"WM_COPYDATA announced {m.shm[1]} bytes in a {seg.size}-byte segment")
    m.data = seg.buf[: m.shm[1]].toreadonly()
    return seg


def detach_data(m: Message, seg: SharedMemory | None) -> None:
    if seg is not None:
        m.data = None
        seg.close()


class Peer:
    """One connection and the lock that keeps its frames whole."""

    def __init__(self, ch: Any) -> None:
        self.ch = ch
        self.lock = threading.Lock()
        self.gone = threading.Event()  # set when dropped: its serve thread may return
        creds = getattr(ch, "peer_credentials", None)
        self.pid, self.uid = (creds.pid, creds.uid) if creds else (0, -1)

    def send(self, frame: Any) -> None:
        with self.lock:
            self.ch.send(frame)


#: How long the pumping thread polls its connections (and a sender polls for
#: its reply) before sleeping in the kernel: on a small machine a kernel
#: wake-up costs tens of µs, a whole local round trip a few tens.
SPIN = 100e-6
#: A handler running longer than this lets the background thread answer posts meanwhile.
TAKEOVER = 0.05


class Bell:
    """A pipe that wakes whichever thread waits on the local connections."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.lock = threading.Lock()  # ring() never writes to a descriptor close() gave back

    def fileno(self) -> int:
        return self.r

    def ring(self) -> None:
        with self.lock:
            if self.w >= 0:
                try:
                    os.write(self.w, b"!")
                except BlockingIOError:
                    pass  # full: it rings already

    def drain(self) -> None:
        try:
            while os.read(self.r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        with self.lock:
            r, w, self.r, self.w = self.r, self.w, -1, -1
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)


class Cond(threading.Condition):
    """A condition whose notify_all also rings the bell (the pump sleeps on the connections,
    not on the condition): what the network readers and the nats port call."""

    def __init__(self, bell: Bell) -> None:
        super().__init__()
        self.bell = bell

    def notify_all(self) -> None:
        super().notify_all()
        self.bell.ring()

    def notify_quiet(self) -> None:
        super().notify_all()
