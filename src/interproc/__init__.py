"""interproc: every classic IPC method behind one Python API, with a C core.

The public modules are ``interproc.shm``, ``interproc.sync``,
``interproc.shared`` and the transports and protocols built on them; this
package re-exports the error tree and the address entry points.
"""

from ._errors import (
    AlreadyExists as AlreadyExists,
    ChannelClosed as ChannelClosed,
    HandleClosed as HandleClosed,
    InterprocError as InterprocError,
    MessageTooLarge as MessageTooLarge,
    MissingDependency as MissingDependency,
    NotFound as NotFound,
    OwnerDied as OwnerDied,
    PermissionDenied as PermissionDenied,
    ProtocolError as ProtocolError,
    RemoteError as RemoteError,
    Timeout as Timeout,
)

from ._address import connect as connect, listen as listen

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "ChannelClosed",
    "HandleClosed",
    "InterprocError",
    "MessageTooLarge",
    "MissingDependency",
    "NotFound",
    "OwnerDied",
    "PermissionDenied",
    "ProtocolError",
    "RemoteError",
    "Timeout",
    "connect",
    "listen",
]
