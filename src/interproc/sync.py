"""Named synchronisation usable by unrelated processes: robust ``Mutex``,
``Semaphore`` and ``Event`` (see docs/sync.md)."""

from ._sync import Event as Event, Mutex as Mutex, RobustLock as RobustLock, Semaphore as Semaphore

__all__ = ["Event", "Mutex", "RobustLock", "Semaphore"]
