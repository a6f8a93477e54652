"""Pipes: named pipes (``pipe://``) and anonymous pipes and FIFOs.

* ``_core.py`` — what both drivers share and that never waits: the path,
  the uid refusal, the connection setup, address options;
* ``_named.py`` — the blocking named-pipe driver (a user-private AF_UNIX
  socket per name, instances, message or byte mode);
* ``_anonymous.py`` — one-way anonymous pipes and FIFOs;
* ``_aio.py`` — their asyncio drivers.

Both ride on the framed byte stream of :mod:`interproc._stream` and set up
connections with :mod:`interproc._setup`.  Users import :mod:`interproc.pipes`.
"""
