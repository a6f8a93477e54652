"""asyncio versions of interproc's public names (as redis.asyncio and zmq.asyncio do)."""

from ._mailslot import Mailslot as Mailslot, MailslotWriter as MailslotWriter
from ._sync import Event as Event, Semaphore as Semaphore

__all__ = ["Event", "Mailslot", "MailslotWriter", "Semaphore"]
