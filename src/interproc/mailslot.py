"""Mailslots: one-way, message-oriented, connectionless (Win32 method 6).

    slot = Mailslot.create("alerts", max_message_size=64 * 1024)   # the server
    Mailslot.write("alerts", b"disk full")                          # any process
    slot.read(timeout=1)           # -> b"disk full"
    slot.pending()                 # -> Pending(count=0, next_size=None)

Messages queue (up to ``max_messages``, default 10,000) until read, even
while the server is busy; ``scope="domain"`` broadcasts to every server of
the name on the network by UDP multicast.  See docs/mailslot.md.
"""

from ._errors import MessageTooLarge as MessageTooLarge
from ._mailslot import (
    DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_MESSAGES as DEFAULT_MAX_MESSAGES,
    DEFAULT_QUEUE_BYTES as DEFAULT_QUEUE_BYTES,
    Mailslot as Mailslot,
    MailslotWriter as MailslotWriter,
    Pending as Pending,
)
from ._mailslot._domain import (
    DOMAIN_GROUP as DOMAIN_GROUP,
    DOMAIN_MAX_MESSAGE_SIZE as DOMAIN_MAX_MESSAGE_SIZE,
    DOMAIN_PORT as DOMAIN_PORT,
    DOMAIN_TTL as DOMAIN_TTL,
)

__all__ = [
    "DEFAULT_MAX_MESSAGES",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_QUEUE_BYTES",
    "DOMAIN_GROUP",
    "DOMAIN_MAX_MESSAGE_SIZE",
    "DOMAIN_PORT",
    "DOMAIN_TTL",
    "Mailslot",
    "MailslotWriter",
    "MessageTooLarge",
    "Pending",
]
