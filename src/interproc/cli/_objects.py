"""Modules that own named objects; importing them registers their listers."""

import importlib

KIND_MODULES = (
    "interproc._shm",
    "interproc._sync",
    "interproc._shared",
    "interproc._pubsub",
    "interproc._namedpipe",
    "interproc._mailslot",
    "interproc._shmchannel",
    "interproc._pipes",
)

#: Every kind ``interproc ls`` can show (``--kind`` takes one of these).
KINDS = ("chan", "chanlisten", "event", "fifo", "mailslot", "mutex", "pipe", "pub", "semaphore", "shm", "struct")


def load_kinds() -> None:
    for name in KIND_MODULES:
        importlib.import_module(name)
