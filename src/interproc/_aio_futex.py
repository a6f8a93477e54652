"""The one asyncio waiter for objects that sleep on a futex word.

Named events and semaphores (:mod:`interproc._sync`) and mailslot queues
(:mod:`interproc._mailslot._queue`) are signalled through futex words in
shared memory, which an event loop cannot watch.  (``shm://`` channels have
a doorbell descriptor and go through ``loop.add_reader`` instead.)  So a wait
runs in a short-lived thread of its own, asleep in ``futex_wait`` with the GIL
released — no polling — and its result reaches the loop through
``call_soon_threadsafe``.

Cancelling the awaiting task sets the ``cancel`` flag handed to ``wait`` and
calls ``wake()`` (a spurious futex wake: every sleeper re-checks its
condition), so the thread ends at once.  A result that was taken in that
very instant (a semaphore count, an auto-reset event's signal) is handed to
``give_back`` so it is not lost.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable


async def futex_wait(wait: Callable[[threading.Event], Any], wake: Callable[[], None],
                     give_back: Callable[[], None] | None = None, *, name: str = "interproc-aio-futex") -> Any:
    """``await`` what ``wait(cancel)`` returns when run in a waiter thread."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[Any] = loop.create_future()
    cancel = threading.Event()

    def run() -> None:
        try:
            result: Any = wait(cancel)
            ok = True
        except BaseException as exc:  # delivered to the awaiting task
            result, ok = exc, False

        def deliver() -> None:
            if fut.cancelled():
                if ok and result and give_back is not None:
                    give_back()
            elif ok:
                fut.set_result(result)
            else:
                fut.set_exception(result)

        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the loop has closed: nobody wants the result
            if ok and result and give_back is not None:
                give_back()

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        return await fut
    except asyncio.CancelledError:
        cancel.set()
        wake()
        raise
