"""Shared-memory channels (``shm://``): two rings in one segment, in C.

* ``_channel.py`` — the blocking driver (the rings are ``ring.c``, the
  doorbell descriptor ``bell.c``);
* ``_aio.py`` — the asyncio driver: the doorbell on the event loop, no thread.

Users import :mod:`interproc.shmchannel` (or ``interproc.aio``).
"""
