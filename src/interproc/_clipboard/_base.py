"""What every clipboard backend shares: format names, the data map, changes, watchers.

A backend is an object with the methods of :class:`Backend`; the public
module ``interproc.clipboard`` picks one (see ``_select.py``) and only ever
talks to that interface, so nothing above this package knows about X11,
Wayland or macOS.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Union

from .._errors import InterprocError, Timeout
from .._timeout import deadline_of as _deadline_of

TEXT = "text/plain"
HTML = "text/html"
PNG = "image/png"
SELECTIONS = ("CLIPBOARD", "PRIMARY")
FORMAT_MAX = 255

# Targets that answer text/plain, in the order a reader asks for them.
TEXT_TARGETS = ("UTF8_STRING", "text/plain;charset=utf-8", "text/plain", "TEXT", "STRING")
# Targets about the selection rather than formats of its content.
META_TARGETS = frozenset({
    "TARGETS", "TIMESTAMP", "MULTIPLE", "SAVE_TARGETS", "DELETE",
    "INSERT_SELECTION", "INSERT_PROPERTY",
})

Data = Union[bytes, bytearray, memoryview, str]


def check_selection(selection: object) -> str:
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be 'CLIPBOARD' or 'PRIMARY', not {selection!r}")
    return selection  # type: ignore[return-value]


def check_format(fmt: object) -> str:
    """A format is a MIME name or any other printable ASCII name without spaces."""
    if not isinstance(fmt, str):
        raise TypeError(f"clipboard format must be a str, not {type(fmt).__name__}")
    if not 1 <= len(fmt) <= FORMAT_MAX:
        raise ValueError(f"clipboard format must be 1..{FORMAT_MAX} characters long, got {len(fmt)}")
    for i, ch in enumerate(fmt):
        if not ("!" <= ch <= "~"):
            raise ValueError(
                f"clipboard format {fmt!r} has the character {ch!r} at position {i}; "
                "only printable ASCII without spaces is allowed"
            )
    return fmt


def normalize(data: object) -> dict[str, bytes]:
    """Check a ``{format: bytes | str}`` map and return it with every value as bytes.

    ``str`` values are encoded as UTF-8, which is also what ``get_text`` decodes.
    """
    if not isinstance(data, Mapping):
        raise TypeError(
            f"clipboard data must be a mapping of format to bytes/str, not {type(data).__name__}"
        )
    if not data:
        raise ValueError("clipboard data is empty: give at least one format (use clear() to empty it)")
    out: dict[str, bytes] = {}
    for fmt, value in data.items():
        check_format(fmt)
        if fmt in META_TARGETS:
            raise ValueError(f"clipboard format {fmt!r} is reserved: it describes the selection itself")
        if isinstance(value, str):
            out[fmt] = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray, memoryview)):
            out[fmt] = bytes(value)
        else:
            raise TypeError(
                f"clipboard data for {fmt!r} must be bytes or str, not {type(value).__name__}"
            )
    return out


def formats_from_targets(targets: list[str]) -> list[str]:
    """Turn an owner's TARGETS answer into format names (text aliases fold into text/plain)."""
    out: list[str] = []
    for t in targets:
        name = TEXT if t in TEXT_TARGETS else t
        if name in META_TARGETS or name in out:
            continue
        out.append(name)
    return out


def deadline_of(timeout: float | None) -> float | None:
    return _deadline_of(timeout)


def remaining(deadline: float | None, what: str) -> float | None:
    """Seconds left until ``deadline``; raises :class:`Timeout` naming ``what`` once it passed."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise Timeout(f"{what}: timed out")
    return left


@dataclass(frozen=True)
class Change:
    """One change of a selection.

    ``sequence`` counts the changes this watcher saw (1, 2, ...), the analogue
    of Win32's ``GetClipboardSequenceNumber``.  ``owner`` is the new owner
    (an X window id; 0 when the selection became empty; 0 on backends that
    cannot tell).  ``reason`` is ``"set"`` (someone took ownership),
    ``"owner-destroyed"`` or ``"owner-closed"`` (the owner went away and the
    selection is now empty).
    """

    selection: str
    sequence: int
    owner: int
    reason: str
    timestamp: int = 0


class ChangeSource:
    """A backend's blocking stream of changes; :class:`Watcher` and ``changes()`` drive it.

    ``next(timeout)`` returns the next :class:`Change` or None when
    ``timeout`` passed; ``close()`` may be called from another thread and
    makes a waiting ``next`` return None promptly.
    """

    def next(self, timeout: float | None) -> Change | None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class Changes:
    """Iterator over clipboard changes (``clipboard.changes(timeout=...)``).

    Iteration waits up to ``timeout`` seconds for each next change and ends
    when none comes in time (``timeout=None`` waits forever).  ``next_change``
    is the explicit form that raises :class:`~interproc.Timeout` instead.
    Close it (or use ``with``) to release its display connection.
    """

    def __init__(self, source: ChangeSource, timeout: float | None) -> None:
        self._source = source
        self._timeout = timeout
        self._closed = False
        self._finalizer = weakref.finalize(self, source.close)

    def next_change(self, timeout: float | None = None) -> Change:
        if self._closed:
            raise InterprocError("clipboard change stream is closed")
        change = self._source.next(timeout)
        if change is None:
            raise Timeout(f"no clipboard change within {timeout} s")
        return change

    def __iter__(self) -> Iterator[Change]:
        return self

    def __next__(self) -> Change:
        if self._closed:
            raise StopIteration
        change = self._source.next(self._timeout)
        if change is None:
            raise StopIteration
        return change

    def close(self) -> None:
        self._closed = True
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Changes":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Watcher:
    """Runs ``callback(change)`` in a background thread on every clipboard change.

    Returned by ``clipboard.watch``; the thread has its own connection to the
    display and waits on it (no polling).  ``close()`` stops it and waits for
    the thread; an exception raised by the callback is kept in ``errors`` and
    does not stop the watcher.
    """

    def __init__(self, source: ChangeSource, callback: Callable[[Change], object]) -> None:
        if not callable(callback):
            source.close()
            raise TypeError(f"watch callback must be callable, not {type(callback).__name__}")
        self._source = source
        self._stop = threading.Event()
        self.errors: list[BaseException] = []
        # The thread gets no reference to self, so a watcher dropped without
        # close() can be collected, and its finalizer stops the thread.
        self._thread = threading.Thread(
            target=Watcher._run, args=(source, callback, self._stop, self.errors),
            name="interproc-clipboard-watch", daemon=True,
        )
        self._finalizer = weakref.finalize(self, Watcher._finalize, source, self._stop)
        self._thread.start()

    @staticmethod
    def _finalize(source: ChangeSource, stop: threading.Event) -> None:
        stop.set()
        source.close()

    @staticmethod
    def _run(source: ChangeSource, callback, stop: threading.Event, errors: list) -> None:
        while not stop.is_set():
            try:
                change = source.next(None)
            except Exception as exc:  # the display went away: nothing more will come
                if not stop.is_set():
                    errors.append(exc)
                return
            if change is None:
                continue
            try:
                callback(change)
            except Exception as exc:
                errors.append(exc)

    def close(self, timeout: float | None = 5.0) -> None:
        self._finalizer()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def __enter__(self) -> "Watcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Backend:
    """The interface every backend implements (one instance per selection)."""

    name = "base"

    def __init__(self, selection: str) -> None:
        self.selection = check_selection(selection)

    def set(self, data: dict[str, bytes], timeout: float | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def get(self, fmt: str, timeout: float | None) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def formats(self, timeout: float | None) -> list[str]:  # pragma: no cover
        raise NotImplementedError

    def clear(self, timeout: float | None) -> None:  # pragma: no cover
        raise NotImplementedError

    def register_format(self, name: str) -> int:  # pragma: no cover
        raise NotImplementedError

    def change_source(self) -> ChangeSource:  # pragma: no cover
        raise NotImplementedError


REGISTERED_FIRST = 0xC000
REGISTERED_LAST = 0xFFFF


def register_in_file(path: str, name: str) -> int:
    """``RegisterClipboardFormat`` for backends without a server-side registry.

    Ids live in a JSON file guarded by ``flock``, so every process of the user
    gets the same id for the same name: the first registration takes the next
    free id in 0xC000..0xFFFF, the Win32 range.
    """
    check_format(name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = b""
        while chunk := os.read(fd, 65536):
            raw += chunk
        try:
            table = json.loads(raw) if raw else {}
        except ValueError:
            raise InterprocError(f"clipboard format registry {path} is corrupt") from None
        if name in table:
            return int(table[name])
        used = set(table.values())
        new = next((i for i in range(REGISTERED_FIRST, REGISTERED_LAST + 1) if i not in used), None)
        if new is None:
            raise InterprocError(f"clipboard format registry {path} is full")
        table[name] = new
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(table, sort_keys=True).encode())
        return new
    finally:
        os.close(fd)
