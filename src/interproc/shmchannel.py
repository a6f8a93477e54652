"""The shared-memory channel ``shm://NAME``: its classes, for annotations and isinstance.

Get a channel from ``interproc.connect("shm://NAME")`` or ``ShmListener.accept``
(``interproc.listen("shm://NAME")``); a ``ShmChannel`` adds ``recv_into`` and
``recv_view`` to the Channel methods.  See docs/shmchannel.md.
"""

from ._shmchannel._channel import ShmChannel as ShmChannel, ShmListener as ShmListener

__all__ = ["ShmChannel", "ShmListener"]
