"""Modules that own named objects; importing them registers their listers.

The core resources are listed here; each transport's modules come from its
scheme record (:func:`interproc._schemes.kind_modules`).
"""

import importlib

from .._schemes import kind_modules

KIND_MODULES = (
    "interproc._shm",
    "interproc._sync",
    "interproc._shared",
    "interproc._pubsub",
    "interproc._pipes._anonymous",  # FIFOs
    "interproc._messages._names",  # windows (interproc.messages)
    "interproc._dde._server",  # DDE services
    "interproc._objects._listing",  # object servers (interproc.objects)
) + tuple(m for m in kind_modules() if m not in ("interproc._shm", "interproc._sync", "interproc._shared"))

#: Every kind ``interproc ls`` can show (``--kind`` takes one of these).
KINDS = ("chan", "chanlisten", "event", "fifo", "mailslot", "mutex", "objects", "pipe", "pub", "semaphore", "shm", "struct")
KINDS += ("dde", "msgwin")  # window messages and DDE services


def load_kinds() -> None:
    for name in KIND_MODULES:
        importlib.import_module(name)
