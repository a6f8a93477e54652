"""The relay process behind :func:`interproc.serial.pty_pair` (a virtual null-modem).

Run as a script (``python -I _ptyrelay.py``); it imports only the standard
library, so it starts fast and needs no import path.  It opens two ptys,
prints ``READY <slave-a> <slave-b>`` on stdout, then copies master A to
master B and back until its stdin reaches EOF: the owning process closed
the pipe (``PtyPair.close()``) or died, so the relay never outlives it.

Why a process and not a thread: a thread in the owner stops relaying
whenever the owner holds the GIL for long (a big numpy call, a C extension)
and dies with it in the middle of a test's assertions; a separate process
keeps the line moving whatever the owner does.

Why the relay keeps each slave open too: when the last fd of a pty slave
closes, reads of its master fail with EIO and poll() reports POLLHUP
continuously, so between two users of a port the relay would have to
busy-wait or guess.  Holding the slave keeps the line "up", like a cable
that stays plugged in.  Bytes sent while nobody has the other end open wait
in the pty (up to ~64 KiB, then the sender is flow-controlled); pyserial
discards them when it opens the port, as a real UART would have lost them.
"""

import errno
import os
import select
import signal
import sys
import termios
import tty

LIMIT = 256 * 1024  # bytes buffered per direction before we stop reading
CHUNK = 65536


def _raw(fd):
    # Raw: no echo, no CR/LF translation, no ^C/^Z/^\ signals, no flow
    # control, 8 bits, every byte passes unchanged.
    tty.setraw(fd, termios.TCSANOW)
    attrs = termios.tcgetattr(fd)
    attrs[0] &= ~(termios.IXON | termios.IXOFF | termios.ICRNL | termios.INLCR | termios.IGNCR | termios.ISTRIP)
    attrs[1] &= ~termios.OPOST
    attrs[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the owner's terminal is the owner's business
    ma, sa = os.openpty()
    mb, sb = os.openpty()
    for s in (sa, sb):
        _raw(s)
        os.fchmod(s, 0o600)  # user scope: only the owner's uid may open the port
    for m in (ma, mb):
        os.set_blocking(m, False)
    sys.stdout.write(f"READY {os.ttyname(sa)} {os.ttyname(sb)}\n")
    sys.stdout.flush()

    stdin = sys.stdin.fileno()
    pending = {ma: bytearray(), mb: bytearray()}  # bytes waiting to be written TO that master
    other = {ma: mb, mb: ma}
    poller = select.poll()
    while True:
        poller.register(stdin, select.POLLIN)
        for m in (ma, mb):
            ev = 0
            if len(pending[other[m]]) < LIMIT:
                ev |= select.POLLIN
            if pending[m]:
                ev |= select.POLLOUT
            poller.register(m, ev)
        for fd, ev in poller.poll():
            if fd == stdin:
                if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
                    return 0  # owner closed the pipe or died
                continue
            if ev & select.POLLOUT and pending[fd]:
                try:
                    n = os.write(fd, pending[fd][:CHUNK])
                    del pending[fd][:n]
                except BlockingIOError:
                    pass
            if ev & (select.POLLIN | select.POLLHUP):
                try:
                    data = os.read(fd, CHUNK)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno == errno.EIO:
                        continue  # cannot happen while we hold the slave; be safe
                    raise
                pending[other[fd]] += data


if __name__ == "__main__":
    sys.exit(main())
