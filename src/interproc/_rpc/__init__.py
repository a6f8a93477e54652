"""RPC: JSON-RPC 2.0 as a sans-I/O protocol, and the drivers that move its bytes.

    _protocol   Protocol: one per connection, either end, symmetric (both ends
                may call).  request/notification/batch/hello -> bytes; receive(bytes)
                -> [Call | Result | Failure | Send]; reply/fail(call, ...) -> bytes
                or None (notification, batch not complete); cancel(id) makes a late
                reply vanish; abandon() when the channel dies.  Fault(code) for a
                JSON-RPC error answer; remote_error(obj) -> RemoteError (.code).
    _dispatch   Exposed(obj): the public-method table; resolve(method, args,
                kwargs) -> entry (.fn, .is_async) or Fault -32601 / -32602.  Any
                object with that resolve() can stand in (distributed objects
                dispatch to many objects per connection).
    _endpoint   Endpoint(channel, exposed=, protocol=, timeout=, workers=): the
                blocking driver over any Channel.  submit() -> Pending,
                call(), notify(), batch(), serve(), close().  Threads share the
                reader role; calls run inline and a promoter hands the role on
                when they run long; a call made while answering a call reads for
                itself, so calls nest both ways on one connection.
    _aio        AsyncEndpoint, AsyncProxy, AsyncServer: the asyncio driver.
    _client     Proxy, Batch, connect() (blocking).
    _server     Server: accept loop, one Endpoint per connection.
    _lines      jsonrpc+tcp:// / jsonrpc+unix://: newline-delimited JSON channels
                (blocking and asyncio) for other languages' clients.
"""
