"""``interproc.serve``: the one accept loop, for every Listener of every transport.

    def echo(ch):                      # runs in its own thread, one per connection
        for msg in ch:
            ch.send(msg)

    with interproc.serve(interproc.listen("unix:///tmp/echo.sock"), echo) as server:
        server.serve_forever()         # until Ctrl-C or server.close() from another thread

Why this shape:

* ``serve()`` returns a :class:`Server` that is already accepting (in a
  background thread), like ``asyncio.start_server``; ``serve_forever()``
  only parks the caller until the server is closed, and turns Ctrl-C into a
  graceful shutdown.  A server embedded in a bigger program just keeps the
  object and calls ``close()``.
* The handler owns nothing: the server closes each connection when its
  handler returns or raises.  A handler that raises is logged on
  ``logging.getLogger("interproc")`` and never stops the server; a peer that
  went away (``ChannelClosed``) is not an error.
* Graceful shutdown (``close(timeout=)``): stop accepting (the listener is
  closed at once, so its address is free again), give running handlers up to
  ``timeout`` seconds to finish, then close their connections — a handler
  blocked in ``recv()`` then gets ``HandleClosed``/``ChannelClosed`` and ends.
* The accept loop waits on the listener's ``fileno()`` and a self-pipe
  together, so ``close()`` from any thread wakes it at once, without polling;
  a listener without a descriptor is woken by its own ``close()``.
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ._contract import Channel, Listener
from ._errors import ChannelClosed, HandleClosed, InterprocError, Timeout

log = logging.getLogger("interproc")

#: How long ``close()`` gives running handlers by default.
SHUTDOWN_TIMEOUT = 5.0


def run_handler(handler: Callable[[Any], Any], ch: Any, what: str, stopping: Callable[[], bool]) -> None:
    """Run one connection's handler; log what it raised; always close the channel."""
    try:
        handler(ch)
    except ChannelClosed as exc:
        log.debug("%s: the peer went away (%s)", what, exc)
    except HandleClosed as exc:
        if not stopping():  # closed by the shutdown: expected
            log.exception("%s: the handler used a closed handle: %s", what, exc)
    except Exception:
        log.exception("%s: the handler raised; its connection is closed, the server goes on", what)
    finally:
        try:
            ch.close()
        except Exception:  # pragma: no cover - close() must not raise, but never kill the worker
            log.exception("%s: close() raised", what)


class Server:
    """A running accept loop over ``listener``; see :func:`serve`.

    ``address`` is the listener's; ``connections`` counts live connections;
    ``served`` counts connections accepted so far.
    """

    def __init__(self, listener: Listener, handler: Callable[[Channel], Any], *,
                 max_workers: int | None = None) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)
                                        or max_workers < 1):
            raise ValueError(f"max_workers must be a positive int or None, not {max_workers!r}")
        self.listener = listener
        self.address = getattr(listener, "address", repr(listener))
        self.handler = handler
        self.max_workers = max_workers
        self.served = 0
        self._lock = threading.Lock()
        self._live: dict[Any, threading.Thread | None] = {}  # channel -> its thread (None in a pool)
        self._idle = threading.Condition(self._lock)
        self._stopping = False
        self._closed = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="interproc-serve") if max_workers else None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._loop = threading.Thread(target=self._accept_loop, name=f"interproc-serve {self.address}", daemon=True)

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else f"{self.connections} connection(s)"
        return f"<Server {self.address} {state}>"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._live)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def start(self) -> "Server":
        self._loop.start()
        return self

    # -- the accept loop ---------------------------------------------------------
    def _accept_loop(self) -> None:
        sel = selectors.DefaultSelector()
        waitable = hasattr(self.listener, "fileno")
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping:
                if waitable:
                    # fileno() on every round: for shm:// it re-arms the doorbell.
                    try:
                        fd = self.listener.fileno()  # type: ignore[attr-defined]
                    except (OSError, ValueError):  # HandleClosed: closed meanwhile
                        return
                    sel.register(fd, selectors.EVENT_READ)
                    # A listener with handshakes in flight may need accept()
                    # at a deadline even if nothing fires (interproc._accept).
                    wake_after = getattr(self.listener, "wake_after", None)
                    try:
                        sel.select(wake_after() if wake_after is not None else None)
                    finally:
                        sel.unregister(fd)
                    if self._stopping:
                        return
                    timeout: float | None = 0  # readable: a client is there (or the ring was spurious)
                else:
                    timeout = None  # woken by the listener's close()
                try:
                    ch = self.listener.accept(timeout=timeout)
                except Timeout:
                    continue
                except HandleClosed:
                    return
                except (InterprocError, OSError) as exc:
                    # A client that failed its handshake or was refused: the
                    # listener is fine, the next client may be too.
                    if self._stopping:
                        return
                    log.warning("%s: a connection was refused: %s", self.address, exc)
                    continue
                self._dispatch(ch)
        except Exception:
            log.exception("%s: the accept loop failed; the server stops", self.address)
            threading.Thread(target=self.close, daemon=True).start()
        finally:
            sel.close()

    def _dispatch(self, ch: Any) -> None:
        with self._lock:
            if self._stopping:
                ch.close()
                return
            self.served += 1
            what = f"{self.address} connection {self.served}"
            if self._pool is not None:
                self._live[ch] = None
                self._pool.submit(self._run, ch, what)
                return
            t = threading.Thread(target=self._run, args=(ch, what), name=f"interproc-serve {what}", daemon=True)
            self._live[ch] = t
        t.start()

    def _run(self, ch: Any, what: str) -> None:
        try:
            if self._stopping:  # queued in the pool while the server shut down
                ch.close()
                return
            run_handler(self.handler, ch, what, lambda: self._stopping)
        finally:
            with self._lock:
                self._live.pop(ch, None)
                self._idle.notify_all()

    # -- shutdown -----------------------------------------------------------------
    def serve_forever(self) -> None:
        """Park the calling thread until the server is closed.

        Ctrl-C (``KeyboardInterrupt``) here shuts the server down gracefully
        and returns normally.
        """
        try:
            self._closed.wait()
        except KeyboardInterrupt:
            log.info("%s: interrupted, shutting down", self.address)
            self.close()

    def close(self, timeout: float | None = SHUTDOWN_TIMEOUT) -> None:
        """Stop accepting, give running handlers up to ``timeout`` seconds
        (None: as long as they take), then close their connections.  Idempotent;
        any thread may call it (a handler too: it then does not wait for itself)."""
        with self._lock:
            first = not self._stopping
            self._stopping = True
        if first:
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
            try:
                self.listener.close()  # the address is free again; wakes a fd-less accept
            except Exception:
                log.exception("%s: closing the listener raised", self.address)
            if self._loop.is_alive() and self._loop is not threading.current_thread():
                self._loop.join()
        me = threading.current_thread()
        with self._lock:
            self._idle.wait_for(lambda: all(t is me for t in self._live.values()) if self._live else True,
                                timeout)
            left = [ch for ch, t in self._live.items() if t is not me]
        for ch in left:  # handlers still running: their peer would wait forever otherwise
            try:
                ch.close()
            except Exception:
                pass
        if left:
            with self._lock:
                self._idle.wait_for(lambda: not any(t is not me for t in self._live.values()), 1.0)
        if first:
            if self._pool is not None:
                # Queued connections still run _run, which sees _stopping and closes them.
                self._pool.shutdown(wait=False)
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._closed.set()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(listener: Listener, handler: Callable[[Channel], Any], *, max_workers: int | None = None) -> Server:
    """Serve ``listener``: call ``handler(channel)`` for each client, in a
    thread of its own (or in a pool of ``max_workers`` threads: clients beyond
    that wait for a free worker, already connected).

    Returns the running :class:`Server`: ``server.serve_forever()`` parks the
    caller until Ctrl-C or ``close()``; ``server.close(timeout=)`` shuts down
    gracefully; ``with serve(...) as server:`` closes it on exit.
    """
    return Server(listener, handler, max_workers=max_workers).start()
