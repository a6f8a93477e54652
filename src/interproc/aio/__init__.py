"""asyncio versions of interproc's public names (as redis.asyncio / zmq.asyncio)."""

from ._shm import ShmChannel as ShmChannel, ShmListener as ShmListener
