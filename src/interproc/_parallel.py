"""Parallel ports through Linux ppdev (``/dev/parportN``), with ``fcntl.ioctl``.

UNTESTED ON HARDWARE: no machine this was written on has a parallel port.
The ioctl numbers are computed from ``linux/ppdev.h`` with the kernel's
``_IOC`` encoding (and checked against the C header by the tests when a C
compiler is present); argument checks and the errors for a missing port are
tested.  What the lines actually do on a real port is not.

The ppdev model: open the device, *claim* the port (PPCLAIM; other drivers
such as ``lp`` are kept off it until PPRELEASE), then read and write the
8 data lines, read the 5 status lines and drive the 4 control lines.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import os
import platform
import struct
from typing import Any

from ._errors import HandleClosed, InterprocError, NotFound, PermissionDenied


# -- ioctl numbers: the _IOC macro of asm-generic/ioctl.h ------------------------

def _ioc_layout(machine: str) -> tuple[int, int, int, int]:
    """(NONE, WRITE, READ, SIZEBITS) for this CPU's ioctl encoding."""
    m = machine.lower()
    # powerpc, mips, sparc and alpha use their own asm/ioctl.h: 3 direction
    # bits and a 13-bit size.  Everything else uses asm-generic.
    if m.startswith(("ppc", "powerpc", "mips", "sparc", "alpha")):
        return 1, 4, 2, 13
    return 0, 1, 2, 14


_NONE, _WRITE, _READ, _SIZEBITS = _ioc_layout(platform.machine())


def _ioc(direction: int, type_: str, nr: int, size: int) -> int:
    if size >= 1 << _SIZEBITS:
        raise ValueError("ioctl argument too large")
    return (direction << (16 + _SIZEBITS)) | (size << 16) | (ord(type_) << 8) | nr


def _IO(t: str, nr: int) -> int:  # noqa: N802 - named after the C macros
    return _ioc(_NONE, t, nr, 0)


def _IOR(t: str, nr: int, size: int) -> int:  # noqa: N802
    return _ioc(_READ, t, nr, size)


def _IOW(t: str, nr: int, size: int) -> int:  # noqa: N802
    return _ioc(_WRITE, t, nr, size)


_UCHAR, _INT = 1, 4
PP_IOCTL = "p"
PPSETMODE = _IOW(PP_IOCTL, 0x80, _INT)
PPRSTATUS = _IOR(PP_IOCTL, 0x81, _UCHAR)
PPRCONTROL = _IOR(PP_IOCTL, 0x83, _UCHAR)
PPWCONTROL = _IOW(PP_IOCTL, 0x84, _UCHAR)
PPRDATA = _IOR(PP_IOCTL, 0x85, _UCHAR)
PPWDATA = _IOW(PP_IOCTL, 0x86, _UCHAR)
PPCLAIM = _IO(PP_IOCTL, 0x8B)
PPRELEASE = _IO(PP_IOCTL, 0x8C)
PPYIELD = _IO(PP_IOCTL, 0x8D)
PPFCONTROL = _IOW(PP_IOCTL, 0x8E, 2)  # struct ppdev_frob_struct { u8 mask, val; }
PPEXCL = _IO(PP_IOCTL, 0x8F)
PPDATADIR = _IOW(PP_IOCTL, 0x90, _INT)

# Line bits (linux/parport.h).  Status: what the printer tells us.
STATUS_ERROR = 0x08
STATUS_SELECT = 0x10
STATUS_PAPEROUT = 0x20
STATUS_ACK = 0x40
STATUS_BUSY = 0x80  # inverted by the hardware: 1 here means the line is low
# Control: what we drive.
CONTROL_STROBE = 0x01
CONTROL_AUTOFD = 0x02
CONTROL_INIT = 0x04
CONTROL_SELECT = 0x08

_HINT = ("load the drivers with `sudo modprobe parport_pc ppdev`; "
         "`interproc serial ports` lists serial ports, `ls /dev/parport*` parallel ones")


def _device_path(port: Any) -> str:
    if isinstance(port, bool):
        raise TypeError(f"port must be a number (0 for /dev/parport0) or a device path, not {port!r}")
    if isinstance(port, int):
        if port < 0:
            raise ValueError(f"parallel port number must be >= 0, not {port}")
        return f"/dev/parport{port}"
    if isinstance(port, (str, os.PathLike)):
        path = os.fspath(port)
        if not path.startswith("/"):
            raise ValueError(f"parallel port path must be absolute (e.g. /dev/parport0), not {path!r}")
        return path
    raise TypeError(f"port must be a number (0 for /dev/parport0) or a device path, not {type(port).__name__}")


def _byte(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int 0..255, not {type(value).__name__}")
    if not 0 <= value <= 255:
        raise ValueError(f"{what} must be 0..255, not {value}")
    return value


def ports() -> list[str]:
    """The ppdev parallel port devices present (``/dev/parport*``)."""
    return sorted(glob.glob("/dev/parport[0-9]*"), key=lambda p: (len(p), p))


class ParallelPort:
    """A claimed ppdev parallel port.  Use :func:`open`."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd = fd
        self.path = path
        self.claimed = False

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else ("claimed" if self.claimed else "released")
        return f"<ParallelPort {self.path!r} {state}>"

    # -- plumbing -----------------------------------------------------
    def fileno(self) -> int:
        if self._fd < 0:
            raise HandleClosed(f"parallel port {self.path} is closed (used after its close())")
        return self._fd

    def _ioctl(self, request: int, arg: Any, what: str) -> Any:
        fd = self.fileno()
        try:
            return fcntl.ioctl(fd, request, arg)
        except OSError as exc:
            raise self._error(exc, what) from exc

    def _error(self, exc: OSError, what: str) -> Exception:
        if exc.errno in (errno.ENOTTY, errno.EINVAL) and what in ("claim", "exclusive"):
            return InterprocError(f"{self.path} is not a ppdev parallel port device ({what}: {exc.strerror}); {_HINT}")
        if exc.errno == errno.EINVAL:
            return InterprocError(f"parallel port {self.path}: {what} refused; claim() the port first")
        if exc.errno in (errno.ENXIO, errno.ENODEV):
            return NotFound(f"parallel port {self.path}: no port behind the device ({exc.strerror}); {_HINT}")
        if exc.errno in (errno.EBUSY,):
            return PermissionDenied(f"parallel port {self.path}: busy, another driver or process has it ({what})")
        return OSError(exc.errno, f"parallel port {self.path}: {what}: {exc.strerror}")

    def _need_claim(self) -> None:
        if not self.claimed:
            raise InterprocError(f"parallel port {self.path}: claim() the port before using its lines")

    # -- claim ----------------------------------------------------------
    def claim(self, *, exclusive: bool = False) -> None:
        """PPCLAIM (after PPEXCL if ``exclusive``).  Waits while another driver
        holds the port; Ctrl-C interrupts the wait (ppdev offers no timeout)."""
        if self.claimed:
            return
        if exclusive:
            self._ioctl(PPEXCL, 0, "exclusive")
        self._ioctl(PPCLAIM, 0, "claim")
        self.claimed = True

    def release(self) -> None:
        """PPRELEASE: let other drivers (``lp``) use the port again."""
        if self.claimed:
            self.claimed = False
            self._ioctl(PPRELEASE, 0, "release")

    # -- lines ----------------------------------------------------------
    def write_data(self, value: int) -> None:
        """Drive the 8 data lines (PPWDATA)."""
        value = _byte(value, "data")
        self._need_claim()
        self._ioctl(PPWDATA, struct.pack("B", value), "write data")

    def read_data(self) -> int:
        """Read the 8 data lines (PPRDATA; set ``data_direction(input=True)`` first to read a peer)."""
        self._need_claim()
        return struct.unpack("B", self._ioctl(PPRDATA, b"\0", "read data"))[0]

    def read_status(self) -> int:
        """Read the status lines (PPRSTATUS): ``STATUS_*`` bits."""
        self._need_claim()
        return struct.unpack("B", self._ioctl(PPRSTATUS, b"\0", "read status"))[0]

    def write_control(self, value: int) -> None:
        """Drive the control lines (PPWCONTROL): ``CONTROL_*`` bits."""
        value = _byte(value, "control")
        self._need_claim()
        self._ioctl(PPWCONTROL, struct.pack("B", value), "write control")

    def read_control(self) -> int:
        self._need_claim()
        return struct.unpack("B", self._ioctl(PPRCONTROL, b"\0", "read control"))[0]

    def frob_control(self, mask: int, value: int) -> None:
        """Change only the control bits in ``mask`` to those of ``value`` (PPFCONTROL)."""
        mask, value = _byte(mask, "mask"), _byte(value, "value")
        self._need_claim()
        self._ioctl(PPFCONTROL, struct.pack("BB", mask, value), "frob control")

    def data_direction(self, *, input: bool) -> None:  # noqa: A002 - the ppdev word
        """PPDATADIR: ``input=True`` tri-states the data lines so ``read_data`` sees the peer."""
        if not isinstance(input, bool):
            raise TypeError(f"input must be True or False, not {input!r}")
        self._need_claim()
        self._ioctl(PPDATADIR, struct.pack("i", 1 if input else 0), "data direction")

    # -- lifetime ---------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        if self._fd >= 0:
            try:
                if self.claimed:
                    self.release()
            except OSError:
                pass
            finally:
                os.close(self._fd)
                self._fd = -1

    def __del__(self) -> None:  # safety net; close() is the way
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> "ParallelPort":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(port: Any = 0, *, claim: bool = True, exclusive: bool = False) -> ParallelPort:  # noqa: A001
    """Open ``/dev/parportN`` (``port=N``) or a device path, and claim it.

    ``NotFound`` (naming the device and how to load ppdev) if there is no
    such port; ``PermissionDenied`` if the user may not open it (the ``lp``
    group usually may).
    """
    path = _device_path(port)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NotFound(f"parallel port {path} does not exist; {_HINT}") from exc
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENODEV):
            raise NotFound(f"parallel port {path}: no port behind the device node; {_HINT}") from exc
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise PermissionDenied(f"parallel port {path}: permission denied (is your user in the 'lp' group?)") from exc
        raise OSError(exc.errno, f"parallel port {path}: {exc.strerror}") from exc
    pp = ParallelPort(fd, path)
    if claim:
        try:
            pp.claim(exclusive=exclusive)
        except BaseException:
            pp.close()
            raise
    return pp
