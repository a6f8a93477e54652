"""Distributed objects (COM/DCOM semantics) over the RPC protocol.

    _core     ClassInfo (what of a class is reachable), Exports (objects this
              process hands out, reference counted per connection), Session
              (one connection, either end: marshals values, by reference for
              anything that is not plain data, and answers the peer's calls).
    _proxy    ObjectProxy / InterfaceView: the client face of a remote object.
    _server   Server: ProgID registry, accept loop, leases (ping_interval,
              missed_pings), the ``interproc ls`` record.
    _client   connect() -> Connection, create(): the client end, its pinger.
    _aio      AsyncSession / AsyncObjectProxy / connect(): the asyncio client,
              over the rpc AsyncEndpoint.
    _listing  the ``interproc ls`` lister (imports nothing heavy).

Every call travels as a JSON-RPC request of the rpc helper's Protocol /
Endpoint (``obj.call``, ``obj.get``, ``obj.set``, ``obj.qi``, ``obj.release``,
``obj.ping`` ...), so calls nest both ways on one connection (callbacks).
"""
