"""Window messages: named endpoints with a message queue, SendMessage / PostMessage / WM_COPYDATA.

    win = messages.Window("editor")
    RELOAD = messages.register_message("MyApp.Reload")

    @win.handler(RELOAD)
    def on_reload(m): return 1

    win.run()                                        # or win.pump(timeout=0)
    messages.send_message("editor", RELOAD, 1, 2, timeout=5)   # from another process

See docs/messages.md.
"""

from ._messages._aio import (
    AsyncWindow as AsyncWindow,
    abroadcast_message as abroadcast_message,
    acopy_data as acopy_data,
    apost_message as apost_message,
    asend_message as asend_message,
)
from ._messages._names import register_message as register_message
from ._messages._protocol import (
    DEFAULT_QUEUE_LIMIT as DEFAULT_QUEUE_LIMIT,
    WM_COPYDATA as WM_COPYDATA,
    WM_USER as WM_USER,
    Message as Message,
    QueueFull as QueueFull,
)
from ._messages._window import (
    Window as Window,
    broadcast_message as broadcast_message,
    copy_data as copy_data,
    find_window as find_window,
    post_message as post_message,
    send_message as send_message,
    windows as windows,
)

__all__ = [
    "AsyncWindow",
    "DEFAULT_QUEUE_LIMIT",
    "Message",
    "QueueFull",
    "WM_COPYDATA",
    "WM_USER",
    "Window",
    "abroadcast_message",
    "acopy_data",
    "apost_message",
    "asend_message",
    "broadcast_message",
    "copy_data",
    "find_window",
    "post_message",
    "register_message",
    "send_message",
    "windows",
]
