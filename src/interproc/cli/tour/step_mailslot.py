"""Tour step: a mailslot -- one-way messages that queue until the server reads."""

from __future__ import annotations

from . import Step, spawn_child, unique


def _child_write(name: str, count: int) -> int:
    """Second process: write without any connection, then leave before anything is read."""
    from interproc.mailslot import Mailslot

    for i in range(count):
        Mailslot.write(name, f"alert {i}: disk {90 + i}% full".encode(), timeout=10)
    return count


def run() -> str:
    from interproc.mailslot import Mailslot

    name = unique("mailslot")
    with Mailslot.create(name, max_message_size=1024) as slot:
        with spawn_child(f"{__name__}:_child_write", name, 3) as child:
            written = child.result(timeout=30)
        # The writer has exited; its messages waited in the queue.
        count, next_size = slot.pending()
        messages = [slot.read(timeout=5).decode() for _ in range(count)]
    if len(messages) != written:
        raise RuntimeError(f"wrote {written} messages, read {len(messages)}")
    return (
        f"pid {child.proc.pid} wrote {written} messages and exited; "
        f"{count} were queued (next {next_size} bytes), read: {messages[0]!r} ..."
    )


STEPS = [Step(60, "mailslot", run)]
