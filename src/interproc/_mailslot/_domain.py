"""Domain mailslots: one datagram to every server of a name on the local network.

The classic ``\\\\*\\mailslot\\name`` write went out as an unacknowledged
NetBIOS datagram.  Here it is a UDP datagram to an IPv4 multicast group
(``DOMAIN_GROUP:DOMAIN_PORT`` unless told otherwise); every server created
with ``domain=True`` joins the group and a small receiver thread puts the
datagrams for its name into its local queue.  Delivery is just as unreliable:
nothing is retransmitted, and the receiver counts the gaps it can see in each
sender's sequence numbers as ``dropped``.

Datagram (sans-I/O: :func:`encode` / :func:`decode`)::

    magic "IPMD"  version u8 (2)  flags u8 (1 = signed)  name length u16
    sender id 8 bytes (random per process)  sequence u64 (per sender and name)
    sent at u64 (wall clock, ns since the epoch)
    name  data  [HMAC-SHA256 of everything before it, 32 bytes]

Anything leaving the machine authenticates: with an ``authkey`` the datagram
carries an HMAC and receivers drop unsigned or badly signed ones (counted as
``rejected``).  Replays are refused in two layers: a receiver takes each
(sender, sequence) once (the nonce cache), and only signed datagrams stamped
within ``REPLAY_WINDOW`` of its clock and no earlier than its own start (less
``CLOCK_SKEW``).  The second layer is what survives a restart: a datagram
captured before a server restarted is older than the new server and refused,
although the new server's nonce cache is empty.  Without an authkey both sides
refuse to work unless ``insecure=True``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import select
import socket
import struct
import threading
import time
from collections import OrderedDict
from typing import Callable

from .._errors import MessageTooLarge, ProtocolError

DOMAIN_GROUP = "239.255.77.76"  # administratively scoped (RFC 2365): stays in the organisation
DOMAIN_PORT = 47677
DOMAIN_TTL = 1  # one hop: the local link only, unless asked for more
DOMAIN_MAX_MESSAGE_SIZE = 424  # the classic remote-mailslot limit

_MAGIC = b"IPMD"
_VERSION = 2  # 2 added the timestamp; version 1 datagrams are refused
_SIGNED = 1
_HDR = struct.Struct("<4sBBH8sQQ")
#: Signed datagrams stamped further than this from the receiver's clock are refused.
REPLAY_WINDOW = 30.0
#: How far a sender's clock may lag the receiver's when the receiver has just started.
CLOCK_SKEW = 2.0
_MAC = 32
_MAX_DATAGRAM = 65507
_MAX_SENDERS = 4096  # sequence state kept per receiver; the oldest senders are forgotten


def _mac(authkey: bytes, body: bytes) -> bytes:
    return hmac.new(authkey, body, hashlib.sha256).digest()


def encode(name: str, data: bytes, sender: bytes, seq: int, authkey: bytes | None,
           sent_ns: int | None = None) -> bytes:
    raw_name = name.encode("ascii")
    flags = _SIGNED if authkey else 0
    stamp = time.time_ns() if sent_ns is None else sent_ns
    body = _HDR.pack(_MAGIC, _VERSION, flags, len(raw_name), sender, seq, stamp) + raw_name + bytes(data)
    if authkey:
        body += _mac(authkey, body)
    if len(body) > _MAX_DATAGRAM:
        raise MessageTooLarge(f"domain mailslot datagram of {len(body)} bytes is over the UDP limit of {_MAX_DATAGRAM}")
    return body


def decode(raw: bytes, authkey: bytes | None) -> tuple[str, bytes, int, bytes]:
    """(name, sender, seq, data) of a datagram; ProtocolError if it does not parse or
    its signature is missing or wrong while ``authkey`` is set."""
    name, sender, seq, _, data = decode_stamped(raw, authkey)
    return name, sender, seq, data


def decode_stamped(raw: bytes, authkey: bytes | None) -> tuple[str, bytes, int, int, bytes]:
    """(name, sender, seq, sent_ns, data): :func:`decode` plus the sender's timestamp."""
    if len(raw) < _HDR.size:
        raise ProtocolError(f"datagram of {len(raw)} bytes is shorter than the header")
    magic, version, flags, name_len, sender, seq, sent_ns = _HDR.unpack_from(raw)
    if magic != _MAGIC or version != _VERSION:
        raise ProtocolError("not an interproc mailslot datagram (bad magic or version)")
    end = len(raw)
    if flags & _SIGNED:
        end -= _MAC
    if _HDR.size + name_len > end:
        raise ProtocolError("datagram name runs past its end")
    if authkey:
        if not flags & _SIGNED:
            raise ProtocolError("unsigned datagram, and this mailslot requires an authkey")
        if not hmac.compare_digest(raw[end:], _mac(authkey, raw[:end])):
            raise ProtocolError("datagram signature does not match the authkey")
    try:
        name = raw[_HDR.size : _HDR.size + name_len].decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("datagram name is not ASCII") from None
    return name, sender, seq, sent_ns, raw[_HDR.size + name_len : end]


def fresh(sent_ns: int, started_ns: int, now_ns: int | None = None,
          window: float = REPLAY_WINDOW, skew: float = CLOCK_SKEW) -> bool:
    """May a signed datagram stamped ``sent_ns`` be taken by a receiver started at ``started_ns``?"""
    now = time.time_ns() if now_ns is None else now_ns
    return abs(now - sent_ns) <= window * 1e9 and sent_ns >= started_ns - skew * 1e9


class SequenceTracker:
    """Per-sender sequence numbers: counts gaps (drops) and refuses repeats (replays)."""

    def __init__(self) -> None:
        self._last: OrderedDict[bytes, int] = OrderedDict()
        self.dropped = 0

    def accept(self, sender: bytes, seq: int) -> bool:
        last = self._last.get(sender)
        if last is not None:
            if seq <= last:
                return False
            self.dropped += seq - last - 1
            self._last.move_to_end(sender)
        elif len(self._last) >= _MAX_SENDERS:
            self._last.popitem(last=False)
        self._last[sender] = seq
        return True


def check_security(authkey: bytes | None, insecure: bool, what: str) -> bytes | None:
    if authkey is not None:
        if not isinstance(authkey, (bytes, bytearray)) or not authkey:
            raise TypeError(f"{what}: authkey must be non-empty bytes")
        return bytes(authkey)
    if not insecure:
        raise ValueError(
            f"{what}: domain mailslot datagrams leave this machine; pass authkey=b'...' "
            "(shared by every sender and server) or insecure=True to send them unsigned"
        )
    return None


# -- sending ---------------------------------------------------------------
class _Sender:
    """This process's identity and sequence numbers (fresh after fork)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.id = os.urandom(8)
        self.seq: dict[str, int] = {}
        self.lock = threading.Lock()
        self.sockets: dict[tuple[int, str | None], socket.socket] = {}

    def next_seq(self, name: str) -> int:
        with self.lock:
            value = self.seq.get(name, 0) + 1
            self.seq[name] = value
            return value

    def socket(self, ttl: int, interface: str | None) -> socket.socket:
        with self.lock:
            sock = self.sockets.get((ttl, interface))
            if sock is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)  # servers on this host too
                if interface:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
                self.sockets[(ttl, interface)] = sock
            return sock


_sender: _Sender | None = None


def send(
    name: str,
    data: memoryview,
    *,
    authkey: bytes | None,
    ttl: int,
    group: str,
    port: int,
    interface: str | None,
    max_message_size: int,
) -> None:
    global _sender
    if data.nbytes > max_message_size:
        raise MessageTooLarge(
            f"domain mailslot {name!r}: message of {data.nbytes} bytes is over the domain limit of "
            f"{max_message_size} (the classic 424-byte limit unless max_message_size= says otherwise)"
        )
    if not 0 <= ttl <= 255:
        raise ValueError(f"ttl must be 0..255, not {ttl}")
    if _sender is None or _sender.pid != os.getpid():
        _sender = _Sender()
    sender = _sender
    datagram = encode(name, data, sender.id, sender.next_seq(name), authkey)
    sender.socket(ttl, interface).sendto(datagram, (group, port))


# -- receiving -------------------------------------------------------------
class Receiver:
    """A thread that feeds one server's queue from the multicast group.

    It only sleeps in select() on the socket and a wake-up pipe, so it costs
    nothing while no datagram arrives; the kernel's socket buffer holds what
    comes in while the thread waits for the GIL.
    """

    def __init__(
        self,
        name: str,
        deliver: Callable[[bytes], bool],
        *,
        authkey: bytes | None,
        group: str,
        port: int,
        interface: str | None,
        max_message_size: int,
    ) -> None:
        self.name = name
        self.authkey = authkey
        self.max_message_size = max_message_size
        self.deliver = deliver
        self.tracker = SequenceTracker()
        # Wall clock: compared with the senders' stamps (clocks in sync, e.g. NTP).
        self.started_ns = time.time_ns()
        self.received = 0
        self.rejected = 0
        self.overflowed = 0  # arrived intact but the local queue was full
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # Every server on this host binds the same port; each gets a copy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((group, port))
            mreq = socket.inet_aton(group) + socket.inet_aton(interface or "0.0.0.0")
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        except OSError:
            sock.close()
            raise
        self.address = sock.getsockname()
        self.sock = sock
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self.thread = threading.Thread(target=self._run, name=f"interproc-mailslot-domain-{name}", daemon=True)
        self.thread.start()

    @property
    def dropped(self) -> int:
        return self.tracker.dropped + self.overflowed

    def _run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.sock, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                try:
                    raw = self.sock.recv(_MAX_DATAGRAM + 1)
                except (BlockingIOError, InterruptedError):
                    continue
                self._handle(raw)
        except (OSError, ValueError):  # closed under us while shutting down
            return

    def _handle(self, raw: bytes) -> None:
        try:
            name, sender, seq, sent_ns, data = decode_stamped(raw, self.authkey)
        except ProtocolError:
            self.rejected += 1
            return
        if name != self.name:
            return  # another mailslot's traffic on the shared group
        if self.authkey and not fresh(sent_ns, self.started_ns):
            self.rejected += 1  # a replay from before this receiver started, or outside the window
            return
        # Sequence first: an authentic datagram refused for its size is not also a gap.
        if not self.tracker.accept(sender, seq) or len(data) > self.max_message_size:
            self.rejected += 1
            return
        self.received += 1
        if not self.deliver(data):
            self.overflowed += 1

    def close(self) -> None:
        if self._wake_w < 0:
            return
        os.write(self._wake_w, b"x")
        if threading.current_thread() is not self.thread:
            self.thread.join(5)
        self.sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._wake_w = -1
