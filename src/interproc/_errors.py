"""interproc's exceptions: one tree, each mixed with the built-in it resembles.

    InterprocError(Exception)
    ├── AlreadyExists(FileExistsError)      a create found the name taken
    ├── NotFound(FileNotFoundError)         nothing by that name / nobody listening
    ├── PermissionDenied(PermissionError)   wrong owner, mode or peer credentials
    ├── Timeout(TimeoutError)               a blocking call ran out of time
    ├── ChannelClosed(ConnectionError)      the peer closed or died
    ├── HandleClosed(ValueError)            this handle was used after its own close()
    ├── MessageTooLarge(ValueError)         a message over the transport's limit
    ├── ProtocolError(ValueError)           a peer sent bytes that do not parse
    ├── MissingDependency(ImportError)      an optional package is not installed;
    │                                       the message names the extra to install
    ├── OwnerDied                           information: a mutex was abandoned
    └── RemoteError                         the remote side raised; carries its
                                            type name, message and traceback text

Code that already catches ``OSError``, ``TimeoutError`` or ``ValueError``
keeps working.  OS errors are translated once, where they are raised, by
:func:`map_os_error`, always chained with ``raise ... from exc``.
"""

from __future__ import annotations

import errno as _errno


class InterprocError(Exception):
    """Base class of every interproc error."""


class AlreadyExists(InterprocError, FileExistsError):
    """A named object already exists (the ERROR_ALREADY_EXISTS answer)."""


class NotFound(InterprocError, FileNotFoundError):
    """No named object, or no listener, by that name."""


class PermissionDenied(InterprocError, PermissionError):
    """The object belongs to someone else, or its mode or peer is not allowed."""


class Timeout(InterprocError, TimeoutError):
    """A blocking call did not complete within its ``timeout=``.

    A write that timed out sets ``written``: the bytes that did go (0 for a
    message write, which is all or nothing).
    """

    written: int | None = None


class ChannelClosed(InterprocError, ConnectionError):
    """The other end closed the channel or died."""


class HandleClosed(InterprocError, ValueError):
    """This handle was used after its own ``close()`` (the peer going away is
    ``ChannelClosed`` instead).  A ``ValueError``, as for a closed file."""


class MessageTooLarge(InterprocError, ValueError):
    """A message is larger than the transport or object accepts."""


class ProtocolError(InterprocError, ValueError):
    """A peer sent bytes (or wrote shared memory) that do not parse."""


class MissingDependency(InterprocError, ImportError):
    """An optional package is not installed; ``extra`` is the interproc extra
    that brings it (``pip install 'interproc[extra]'``)."""

    def __init__(self, what: str, package: str, extra: str) -> None:
        super().__init__(f"{what} needs {package}: pip install 'interproc[{extra}]'")
        self.package, self.extra = package, extra


class OwnerDied(InterprocError):
    """A mutex's previous owner died holding it (Win32 WAIT_ABANDONED).

    Raised only where asked for; ``Mutex.acquire`` itself succeeds and sets
    ``mutex.abandoned`` instead.
    """


class RemoteError(InterprocError):
    """The remote side of a call raised an exception."""

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    @property
    def remote_type(self) -> str:
        """The remote exception's type name, e.g. ``"KeyError"``."""
        return self.type_name


_BY_ERRNO: dict[int, type[InterprocError]] = {
    _errno.EEXIST: AlreadyExists,
    _errno.ENOENT: NotFound,
    _errno.ECONNREFUSED: NotFound,
    _errno.EACCES: PermissionDenied,
    _errno.EPERM: PermissionDenied,
    _errno.ETIMEDOUT: Timeout,
    _errno.EPIPE: ChannelClosed,
    _errno.ECONNRESET: ChannelClosed,
    _errno.ECONNABORTED: ChannelClosed,
    _errno.ENOTCONN: ChannelClosed,
    _errno.EMSGSIZE: MessageTooLarge,
}


def map_os_error(exc: OSError, what: str) -> Exception:
    """Return the interproc error for ``exc``; ``what`` names the object.

    Use as ``raise map_os_error(exc, "shm 'cam'") from exc``.  Errors with no
    better meaning come back as a plain ``InterprocError``-free ``OSError``
    carrying the same errno and the object's name.
    """
    cls = _BY_ERRNO.get(exc.errno or 0)
    reason = exc.strerror or str(exc)
    if cls is None:
        return OSError(exc.errno, f"{what}: {reason}")
    return cls(f"{what}: {reason}")
