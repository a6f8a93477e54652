"""DDE: services, topics and items with cold, warm and hot links, poke and execute.

    srv = dde.Server("Prices"); srv.set("Stocks", "ACME", "101.5"); srv.start()
    conv = dde.connect("Prices", "Stocks", timeout=5)
    conv.request("ACME")                                         # cold link
    hot = conv.advise("ACME", hot=True, callback=lambda item, value: ...)

See docs/dde.md (it also documents the wire format).
"""

from ._dde._aio import (
    AsyncAdviseLink as AsyncAdviseLink,
    AsyncConversation as AsyncConversation,
    AsyncServer as AsyncServer,
    aconnect as aconnect,
)
from ._dde._client import (
    AdviseLink as AdviseLink,
    Conversation as Conversation,
    connect as connect,
    services as services,
)
from ._dde._protocol import BINARY as BINARY, SYSTEM as SYSTEM, TEXT as TEXT
from ._dde._server import Server as Server

__all__ = [
    "AdviseLink",
    "AsyncAdviseLink",
    "AsyncConversation",
    "AsyncServer",
    "BINARY",
    "Conversation",
    "SYSTEM",
    "Server",
    "TEXT",
    "aconnect",
    "connect",
    "services",
]
