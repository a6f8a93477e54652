"""asyncio versions of interproc's public names (as redis.asyncio and zmq.asyncio do)."""

from ._shm import ShmChannel as ShmChannel, ShmListener as ShmListener
from ._sync import Event as Event, Semaphore as Semaphore

__all__ = ["Event", "Semaphore", "ShmChannel", "ShmListener"]
