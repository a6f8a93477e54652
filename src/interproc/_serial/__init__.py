"""Serial ports as byte streams (:class:`SerialPort`); the framed channel is in ``_serial._channel``.

The serial transport's folder: ``_cobs`` (COBS + CRC-32 frames, sans I/O), ``_core``
(the channel's rules, sans I/O), ``_channel`` (blocking driver), ``_aio`` (asyncio
driver), ``_ptypair``/``_ptyrelay`` (virtual null-modems).

pyserial opens and configures the port (termios, custom baud rates, flock);
the reads and writes are ours, on the port's non-blocking fd with ``poll``,
so every call has a deadline and Ctrl-C interrupts it.

Exclusive by default.  POSIX opens of a tty are *not* exclusive, and two
processes reading one port each get half the bytes (pyserial #206/#326,
klipper #1210).  ``exclusive=True`` takes two locks:

* ``flock(LOCK_EX)`` (pyserial's own ``exclusive=``): cooperative, honoured by
  pyserial, minicom-style lock-aware tools and every interproc process, and
  released by the kernel when the holder dies;
* ``TIOCEXCL``: enforced by the kernel on every later ``open()``, even by
  programs that do not lock, except for root (CAP_SYS_ADMIN bypasses it).
  It is a flag on the tty, so ``close()`` clears it (``TIOCNXCL``); the kernel
  also forgets it when the last fd of a real port closes.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import termios
import time
from typing import Any

from .._deadline import check_timeout, deadline_of as _deadline, poll_ms as _remaining_ms
from .._errors import ChannelClosed, HandleClosed, MissingDependency, NotFound, PermissionDenied, Timeout
from .._lifecycle import finalizer, run_quietly

_DEFAULT: Any = object()  # "use the port's default timeout"
READ_CHUNK = 65536

PARITIES = {"N": "N", "E": "E", "O": "O", "M": "M", "S": "S",
            "NONE": "N", "EVEN": "E", "ODD": "O", "MARK": "M", "SPACE": "S"}
BYTESIZES = (5, 6, 7, 8)
STOPBITS = (1, 1.5, 2)


def _serial_module() -> Any:
    try:
        import serial
    except ImportError as exc:
        raise MissingDependency("interproc.serial", "pyserial", "serial") from exc
    return serial


def _byte_view(data: Any) -> memoryview:
    """Any buffer as flat unsigned bytes (copied only if it is not contiguous)."""
    view = memoryview(data)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    return view.cast("B")


def _check_timeout(value: Any, what: str) -> float | None:
    try:
        value = check_timeout(value, what)
    except TypeError as exc:  # open()'s settings errors are all ValueError (as pyserial's)
        raise ValueError(str(exc)) from None
    return None if value is None else float(value)


def _validate(port: Any, baudrate: Any, bytesize: Any, parity: Any, stopbits: Any) -> tuple[str, int, int, str, float]:
    if not isinstance(port, (str, os.PathLike)) or not os.fspath(port):
        raise ValueError(f"port must be a device path such as '/dev/ttyUSB0', not {port!r}")
    if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
        raise ValueError(f"baudrate must be a positive integer (e.g. 9600, 115200), not {baudrate!r}")
    if bytesize not in BYTESIZES or isinstance(bytesize, bool):
        raise ValueError(f"bytesize must be one of {BYTESIZES}, not {bytesize!r}")
    p = PARITIES.get(str(parity).upper()) if isinstance(parity, str) else None
    if p is None:
        raise ValueError(f"parity must be one of N, E, O, M, S (or none/even/odd/mark/space), not {parity!r}")
    if stopbits not in STOPBITS or isinstance(stopbits, bool):
        raise ValueError(f"stopbits must be one of 1, 1.5, 2, not {stopbits!r}")
    return os.fspath(port), baudrate, bytesize, p, stopbits


def _set_tiocexcl(fd: int, on: bool) -> None:
    req = getattr(termios, "TIOCEXCL" if on else "TIOCNXCL", None)
    if req is None:  # pragma: no cover - every Linux has them
        return
    try:
        fcntl.ioctl(fd, req)
    except OSError:
        pass  # not a tty that supports it (some USB adapters): flock still holds


def _close_serial(ser: Any, exclusive: bool, wake: tuple[int, int]) -> None:
    """Close a pyserial object (used by close() and the GC safety net)."""
    for fd in wake:
        try:
            os.close(fd)
        except OSError:
            pass
    if ser.is_open:
        if exclusive and ser.fd is not None:
            # The flag lives on the tty, not on our fd: leave it set and the
            # next non-root open gets EBUSY for as long as the tty stays alive.
            _set_tiocexcl(ser.fd, False)
        ser.close()


class SerialPort:
    """An open serial port as a byte stream.

    ``read(n)`` returns 1..n bytes as soon as any have arrived;
    ``read_exactly(n)`` waits for all n; ``write(b)`` writes everything.  Each
    takes ``timeout=`` (seconds, ``None`` = forever); when left out, the
    port's ``timeout`` / ``write_timeout`` given to :func:`open` apply.
    ``serial`` is the underlying ``serial.Serial`` for modem lines, break and
    the rest of pyserial's API; do not read or write through it.
    """

    def __init__(self, ser: Any, *, exclusive: bool, timeout: float | None, write_timeout: float | None) -> None:
        self.serial = ser
        self.port: str = ser.port
        self.exclusive = exclusive
        self.timeout = timeout
        self.write_timeout = write_timeout
        self._fd: int = ser.fd
        # close() from another thread wakes a blocked read/write through this pipe.
        self._wake = os.pipe()
        self._finalizer = finalizer(self, _close_serial, ser, exclusive, self._wake,
                                    what=f"SerialPort {ser.port!r}")

    # -- settings ------------------------------------------------------
    @property
    def baudrate(self) -> int:
        return self.serial.baudrate

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.serial.baudrate} {self.serial.bytesize}{self.serial.parity}{self.serial.stopbits}"
        return f"<SerialPort {self.port!r} {state}>"

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        self._check_open()
        return self._fd

    def _check_open(self) -> None:
        if self._fd < 0:
            raise HandleClosed(f"serial port {self.port} was used after its close()")

    # -- the line ------------------------------------------------------
    def _no_line(self, what: str) -> None:
        if _is_pty(os.fstat(self.fileno()).st_rdev):
            raise OSError(errno.ENOTTY, f"serial port {self.port} is a pty: it has no {what} "
                                        f"(pty_pair() carries the data lines only)")

    @property
    def modem_lines(self) -> dict[str, bool]:
        """The input lines ``{"cts", "dsr", "ri", "cd"}``; ``OSError(ENOTTY)`` on a pty."""
        self._no_line("modem lines")
        ser = self.serial
        return {"cts": ser.cts, "dsr": ser.dsr, "ri": ser.ri, "cd": ser.cd}

    def send_break(self, duration: float = 0.25) -> None:
        """Hold the line in break for ``duration`` seconds; ``OSError(ENOTTY)`` on a
        pty, where the kernel would accept the request and do nothing."""
        self._no_line("line to send a break on")
        self.serial.send_break(duration)

    # -- I/O -----------------------------------------------------------
    def _wait(self, events: int, deadline: float | None, what: str) -> int:
        poller = select.poll()
        poller.register(self._fd, events)
        poller.register(self._wake[0], select.POLLIN)
        while True:
            ms = _remaining_ms(deadline)
            # poll() is interrupted by signals: Ctrl-C raises KeyboardInterrupt here.
            ready = dict(poller.poll(ms))
            if self._fd < 0 or self._wake[0] in ready:
                raise HandleClosed(f"serial port {self.port} was closed while waiting")
            if ready:
                revents = ready[self._fd]
                if revents & select.POLLNVAL:
                    raise HandleClosed(f"serial port {self.port} was closed while waiting")
                if revents & (select.POLLHUP | select.POLLERR) and not revents & events:
                    raise ChannelClosed(f"serial port {self.port}: hung up (device gone or pty closed)")
                return revents
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(f"serial port {self.port}: {what} timed out")

    def read(self, n: int = READ_CHUNK, *, timeout: float | None = _DEFAULT) -> bytes:
        """Return 1..n bytes, waiting up to ``timeout`` for the first; ``Timeout`` if none came."""
        if n <= 0:
            raise ValueError(f"n must be > 0, not {n}")
        self._check_open()
        deadline = _deadline(self.timeout if timeout is _DEFAULT else timeout)
        while True:
            try:
                data = os.read(self._fd, n)
            except BlockingIOError:
                data = None
            except OSError as exc:
                if exc.errno == errno.EIO:
                    raise ChannelClosed(f"serial port {self.port}: hung up (device gone or pty closed)") from exc
                raise
            if data:
                return data
            revents = self._wait(select.POLLIN, deadline, "read")
            # Readable but nothing to read is how a vanished USB adapter looks
            # (pyserial draws the same conclusion).
            try:
                data = os.read(self._fd, n)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:
                    raise ChannelClosed(f"serial port {self.port}: hung up (device gone or pty closed)") from exc
                raise
            if not data:
                if revents & select.POLLHUP:
                    raise ChannelClosed(f"serial port {self.port}: hung up (device gone or pty closed)")
                raise ChannelClosed(f"serial port {self.port}: readable but returned no data (device disconnected?)")
            return data

    def read_exactly(self, n: int, *, timeout: float | None = _DEFAULT) -> bytes:
        """Return exactly ``n`` bytes; ``Timeout`` (with ``.partial`` holding what came) otherwise."""
        if n < 0:
            raise ValueError(f"n must be >= 0, not {n}")
        deadline = _deadline(self.timeout if timeout is _DEFAULT else timeout)
        buf = bytearray()
        while len(buf) < n:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                buf += self.read(n - len(buf), timeout=left)
            except Timeout as exc:
                err = Timeout(f"serial port {self.port}: read_exactly({n}) timed out after {len(buf)} bytes")
                err.partial = bytes(buf)  # type: ignore[attr-defined]
                raise err from exc
        return bytes(buf)

    def write(self, data: Any, *, timeout: float | None = _DEFAULT) -> int:
        """Write all of ``data`` (any buffer); ``Timeout`` (with ``.written``) if the line stays full."""
        self._check_open()
        view = _byte_view(data)
        deadline = _deadline(self.write_timeout if timeout is _DEFAULT else timeout)
        done = 0
        total = len(view)
        while done < total:
            try:
                done += os.write(self._fd, view[done:])
                continue
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno == errno.EIO:
                    raise ChannelClosed(f"serial port {self.port}: hung up (device gone or pty closed)") from exc
                raise
            try:
                self._wait(select.POLLOUT, deadline, "write")
            except Timeout as exc:
                err = Timeout(f"serial port {self.port}: write timed out after {done} of {total} bytes")
                err.written = done  # type: ignore[attr-defined]
                raise err from exc
        return total

    @property
    def in_waiting(self) -> int:
        """Bytes received and not read yet."""
        self._check_open()
        return self.serial.in_waiting

    @property
    def out_waiting(self) -> int:
        """Bytes written and not sent on the line yet."""
        self._check_open()
        return self.serial.out_waiting

    def drain(self, *, timeout: float | None = _DEFAULT) -> None:
        """Wait until everything written has left the port (tcdrain, but with a deadline)."""
        deadline = _deadline(self.write_timeout if timeout is _DEFAULT else timeout)
        while self.out_waiting:
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(f"serial port {self.port}: drain timed out with {self.out_waiting} bytes queued")
            time.sleep(0.002)  # no kernel call waits for this with a timeout

    def reset_input_buffer(self) -> None:
        self._check_open()
        self.serial.reset_input_buffer()

    def reset_output_buffer(self) -> None:
        self._check_open()
        self.serial.reset_output_buffer()

    # -- lifetime ------------------------------------------------------
    def close(self) -> None:
        if self._fd >= 0:
            self._fd = -1
            try:
                os.write(self._wake[1], b"x")
            except OSError:
                pass
            run_quietly(self._finalizer)

    def __enter__(self) -> "SerialPort":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(  # noqa: A001 - the Pythonic verb for a device
    port: str,
    baudrate: int = 115200,
    *,
    bytesize: int = 8,
    parity: str = "N",
    stopbits: float = 1,
    xonxoff: bool = False,
    rtscts: bool = False,
    dsrdtr: bool = False,
    exclusive: bool = True,
    timeout: float | None = None,
    write_timeout: float | None = None,
) -> SerialPort:
    """Open ``port`` as a byte stream.

    ``timeout`` / ``write_timeout`` are the defaults for calls that pass no
    ``timeout=`` (``None`` = wait forever); they are always set here, never
    inherited from whoever used the port before (a Win32 COMMTIMEOUTS trap).
    Errors: ``ValueError`` for bad settings, ``NotFound`` if the device does
    not exist, ``PermissionDenied`` if it is not ours to open or another
    process holds it (``exclusive=True``, the default).
    """
    path, baudrate, bytesize, parity, stopbits = _validate(port, baudrate, bytesize, parity, stopbits)
    timeout = _check_timeout(timeout, "timeout")
    write_timeout = _check_timeout(write_timeout, "write_timeout")
    serial = _serial_module()
    ser = serial.Serial()
    ser.port = path
    ser.baudrate = baudrate
    ser.bytesize = bytesize
    ser.parity = parity
    ser.stopbits = stopbits
    ser.xonxoff = bool(xonxoff)
    ser.rtscts = bool(rtscts)
    ser.dsrdtr = bool(dsrdtr)
    ser.exclusive = bool(exclusive)
    try:
        ser.open()
    except serial.SerialException as exc:
        raise _map_open_error(exc, path, exclusive) from exc
    except ValueError as exc:  # pyserial rejects a baud rate the driver refuses
        raise ValueError(f"serial port {path}: {exc}") from exc
    except termios.error as exc:
        # pyserial leaves the raw termios.error (and an open descriptor) behind.
        _close_quietly(ser)
        raise _refused(path, bytesize, parity, stopbits, exc.args[-1] if exc.args else str(exc)) from exc
    # A pty's driver forces 8 data bits and no parity without saying so (or,
    # on a second open, fails with EINVAL): check what the line really took.
    cflag = termios.tcgetattr(ser.fd)[2]
    if (cflag & termios.CSIZE) != _CSIZE[bytesize] or bool(cflag & termios.PARENB) != (parity != "N"):
        _close_quietly(ser)
        raise _refused(path, bytesize, parity, stopbits, "the driver did not apply them")
    if exclusive:
        _set_tiocexcl(ser.fd, True)
    return SerialPort(ser, exclusive=bool(exclusive), timeout=timeout, write_timeout=write_timeout)


_CSIZE = {5: termios.CS5, 6: termios.CS6, 7: termios.CS7, 8: termios.CS8}


def _close_quietly(ser: Any) -> None:
    try:
        ser.close()
    except Exception:
        pass


def _refused(path: str, bytesize: int, parity: str, stopbits: float, why: str) -> ValueError:
    hint = " (a pty has no line: it takes only 8 data bits and no parity)" if _is_pty_path(path) else ""
    return ValueError(f"serial port {path} refuses {bytesize} data bits, parity {parity}, {stopbits} stop bits"
                      f"{hint}: {why}")


def _is_pty_path(path: str) -> bool:
    try:
        return _is_pty(os.stat(path).st_rdev)
    except OSError:
        return False


def _is_pty(rdev: int) -> bool:
    return 136 <= os.major(rdev) <= 143  # Unix98 pty slaves (/dev/pts/N)


def _map_open_error(exc: Any, path: str, exclusive: bool) -> Exception:
    code = getattr(exc, "errno", None)
    text = str(exc)
    if code == errno.ENOENT or (code is None and "No such file" in text):
        return NotFound(f"serial port {path}: no such device (see `interproc serial ports`)")
    if code in (errno.EWOULDBLOCK, errno.EAGAIN) or "exclusively lock" in text:
        return PermissionDenied(f"serial port {path} is busy: another process has it open exclusively")
    if code == errno.EBUSY:
        return PermissionDenied(f"serial port {path} is busy: another process has it open exclusively (TIOCEXCL)")
    if code in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"serial port {path}: permission denied (is your user in the 'dialout' group?)")
    if code in (errno.ENOTTY, errno.ENXIO, errno.ENODEV) or "configure port" in text:
        return NotFound(f"serial port {path}: not a serial device ({text})")
    return OSError(code or 0, f"serial port {path}: {text}")


def ports() -> list[dict[str, Any]]:
    """The serial ports this machine has: device, name, description, hwid, USB ids."""
    _serial_module()  # MissingDependency naming the extra, not a bare ModuleNotFoundError
    from serial.tools import list_ports

    out = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        out.append({
            "device": p.device,
            "name": p.name,
            "description": p.description,
            "hwid": p.hwid,
            "vid": p.vid,
            "pid": p.pid,
            "serial_number": p.serial_number,
            "manufacturer": p.manufacturer,
            "product": p.product,
        })
    return out
