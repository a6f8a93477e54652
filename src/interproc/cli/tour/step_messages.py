"""Tour step: window messages -- SendMessage, PostMessage and WM_COPYDATA between two processes."""

from __future__ import annotations

from . import Step, spawn_child, unique


def _child_send(name: str) -> list:
    """Second process: a registered message, a post, a send and a 1 MiB WM_COPYDATA."""
    from interproc import messages

    reload_id = messages.register_message("InterprocTour.Reload")
    messages.post_message(name, reload_id, 1, 0)
    answer = messages.send_message(name, reload_id, 2, 40, timeout=10)
    copied = messages.copy_data(name, b"\x7f" * (1 << 20), tag=7, timeout=10)
    messages.post_message(name, messages.WM_USER + 1)  # ask the window to quit
    return [hex(reload_id), answer, copied]


def run() -> str:
    from interproc import messages

    name = unique("window").replace("tour.", "tour-")
    reload_id = messages.register_message("InterprocTour.Reload")
    handled: list[str] = []
    with messages.Window(name) as win:
        @win.handler(reload_id)
        def on_reload(m: messages.Message) -> int:
            handled.append("posted" if m.posted else "sent")
            return m.wparam + m.lparam

        win.handler(messages.WM_COPYDATA)(lambda m: len(m.data))
        win.handler(messages.WM_USER + 1)(lambda m: handled.append("quit"))
        with spawn_child(f"{__name__}:_child_send", name) as child:
            # pump (rather than run) so a child that fails cannot leave us waiting forever
            while "quit" not in handled and (child.proc.poll() is None or win.pending()):
                win.pump(timeout=0.2)
            handled = [h for h in handled if h != "quit"]
            msg_id, answer, copied = child.result(timeout=30)
    if answer != 42 or copied != 1 << 20:
        raise RuntimeError(f"send_message answered {answer}, copy_data {copied}")
    return (f"pid {child.proc.pid} registered {msg_id} (same id here), posted and sent it "
            f"({'+'.join(handled)}; send_message -> {answer}), WM_COPYDATA of 1 MiB -> {copied} bytes")


STEPS = [Step(20, "window messages", run)]
