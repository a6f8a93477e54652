"""Framed byte streams: the engine under ``pipe://``, ``unix://``, ``tcp://``
and anonymous pipes.

* ``_channel.py`` — blocking: ``StreamEnd`` (descriptor and decoder),
  ``StreamSender``, ``StreamReceiver``, ``StreamChannel``, and the handshake
  loops;
* ``_aio.py`` — the same shape over an asyncio ``BufferedProtocol``.

The frame format is :mod:`interproc._framing`, the handshake
:mod:`interproc._handshake`.
"""
