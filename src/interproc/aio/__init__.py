"""asyncio versions of interproc's transports (as ``redis.asyncio``, ``zmq.asyncio``).

Each line below re-exports one transport's asyncio names.
"""

from ._mailslot import Mailslot as Mailslot, MailslotWriter as MailslotWriter

__all__ = ["Mailslot", "MailslotWriter"]
