"""Framed TCP and AF_UNIX sockets (``tcp://``, ``unix://``) and plain UDP.

* ``_core.py`` — what both drivers share and that never waits: address
  options, the network rule, socket options, one connect attempt and what
  its failure means;
* ``_channel.py`` — the blocking driver;
* ``_aio.py`` — the asyncio driver.

Connection setup is :mod:`interproc._setup`; bytes move on the framed stream
of :mod:`interproc._stream`.  Users import :mod:`interproc.sockets`.
"""
