"""X11 backend: ICCCM selections spoken over the X protocol with python-xlib.

Reading converts the selection into a property of a private unmapped window
and follows the INCR protocol when the owner sends the data in pieces.
Setting hands the data to a background owner process (``_x11_owner``), which
keeps serving after the caller returns and even after it exits, the way
``xclip`` does.  Changes come from XFixes ``SelectSelectionInput`` events.

Format names map to targets (atoms) one to one, except ``text/plain``: it is
offered as ``UTF8_STRING``, ``text/plain;charset=utf-8``, ``text/plain``,
``STRING`` and ``TEXT``, and read from whichever of these the owner answers.
"""

from __future__ import annotations

import functools
import os
import select
import subprocess
import sys
import threading
from typing import Callable

from .._errors import ChannelClosed, InterprocError, MissingDependency, NotFound, ProtocolError, Timeout
from ._base import (
    TEXT,
    TEXT_TARGETS,
    Backend,
    Change,
    ChangeSource,
    check_format,
    deadline_of,
    formats_from_targets,
    remaining,
)


try:
    from Xlib import X, error as xerror
    from Xlib import display as xdisplay
    from Xlib.ext import xfixes
    from Xlib.protocol import request as xrequest
except ImportError as _exc:  # pragma: no cover - python-xlib is an optional dependency
    xdisplay = None
    _IMPORT_ERROR: ImportError | None = _exc

    class xerror:  # noqa: N801 - stands in for Xlib.error in except clauses
        class ConnectionClosedError(Exception):
            pass

        class XError(Exception):
            pass
else:
    _IMPORT_ERROR = None

OWNER_MODULE = "interproc._clipboard._x11_owner"
# How long an owner keeps an INCR transfer whose requestor stopped reading.
INCR_STALL_SECONDS = 30.0
# Longest wait inside select(), so Ctrl-C and close() are noticed promptly.
_SLICE = 0.5
_MAX_LONGS = 0x1FFFFFFF  # GetProperty length (in 4-byte units): "all of it"


def text_aliases(utf8: bytes) -> dict[str, tuple[str, bytes]]:
    """The targets (and their property types) that carry ``text/plain``."""
    latin1 = utf8.decode("utf-8", "replace").encode("latin-1", "replace")
    return {
        "UTF8_STRING": ("UTF8_STRING", utf8),
        "text/plain;charset=utf-8": ("text/plain;charset=utf-8", utf8),
        "text/plain": ("text/plain", utf8),
        "TEXT": ("UTF8_STRING", utf8),
        "STRING": ("STRING", latin1),
    }


def _translating(method):
    """Give X failures their interproc meaning, once, at the backend's surface."""

    @functools.wraps(method)
    def wrapper(self, *args, **kw):
        try:
            return method(self, *args, **kw)
        except xerror.ConnectionClosedError as exc:
            raise ChannelClosed(f"the X server {self.display_name!r} closed the connection: {exc}") from exc
        except xerror.XError as exc:
            # Our requests are well formed; an X error means the owner handed
            # us something invalid (a bad atom in TARGETS, a vanished window).
            raise ProtocolError(f"the {self.selection} owner sent data the X server rejected: {exc}") from exc

    return wrapper


def _xid(obj: object) -> int:
    return int(getattr(obj, "id", obj))  # events carry Window objects, requests ints


def open_display(name: str | None = None):
    """Connect to the X server; any failure becomes an InterprocError naming the display."""
    if _IMPORT_ERROR is not None:
        raise MissingDependency("the X11 clipboard", "python-xlib", "clipboard") from _IMPORT_ERROR
    shown = name or os.environ.get("DISPLAY", "")
    try:
        display = xdisplay.Display(name)
    except (xerror.DisplayError, xerror.ConnectionClosedError, OSError) as exc:
        raise InterprocError(f"cannot connect to the X display {shown!r}: {exc}") from exc
    fast = _fast_reads(type(display.display))
    if fast is not None:
        # This connection only: python-xlib's classes, and any other Display
        # in the process, stay as they are.
        display.display.__class__ = fast
    return display


@functools.lru_cache(maxsize=None)
def _fast_reads(base: type) -> type | None:
    """A subclass of python-xlib's connection class whose leftover input copies in one go.

    After each event or reply python-xlib keeps the unparsed rest of its input as a
    ``bytesview`` (no buffer protocol, no ``__bytes__``), and on the next recv()
    copies it with ``bytes(view)``: one Python call per byte.  An event that
    arrives in the middle of a large GetProperty reply thus costs seconds per
    INCR megabyte (an 8 MiB read: 560 ms instead of 60 ms on Xvfb).  Here, after
    each parse, the rest is re-wrapped (same memory, no copy) in a subclass of
    that ``bytesview`` that has ``__bytes__``.  None when this python-xlib does
    not need it.
    """
    from Xlib.protocol import display as proto

    view_cls = getattr(proto, "bytesview", None)
    if not isinstance(view_cls, type) or hasattr(view_cls, "__bytes__"):
        return None

    class _View(view_cls):  # type: ignore[misc, valid-type]
        def __init__(self, view: memoryview) -> None:  # same state as bytesview, no slicing
            self.view = view

        def __bytes__(self) -> bytes:
            return self.view.tobytes()

    class _FastReads(base):  # type: ignore[misc, valid-type]
        def parse_response(self, request):  # python-xlib's signature
            try:
                return super().parse_response(request)
            finally:
                if type(self.data_recv) is view_cls:
                    self.data_recv = _View(self.data_recv.view)

    return _FastReads


class Connection:
    """One X connection with a private unmapped window and an atom cache."""

    def __init__(self, display_name: str | None = None, event_mask: int = 0) -> None:
        self.d = open_display(display_name)
        self.errors: list[object] = []
        # Errors of requests without replies arrive asynchronously; keep them
        # instead of letting python-xlib print them.
        self.d.set_error_handler(lambda err, req=None: self.errors.append(err))
        self.root = self.d.screen().root
        self.win = self.root.create_window(
            -10, -10, 1, 1, 0, X.CopyFromParent, event_mask=event_mask
        )
        self._atoms: dict[str, int] = {}
        self._names: dict[int, str] = {}

    def atom(self, name: str) -> int:
        a = self._atoms.get(name)
        if a is None:
            a = self._atoms[name] = self.d.intern_atom(name)
            self._names[a] = name
        return a

    def atom_name(self, atom: int) -> str:
        n = self._names.get(atom)
        if n is None:
            n = self._names[atom] = self.d.get_atom_name(atom)
            self._atoms[n] = atom
        return n

    def fileno(self) -> int:
        return self.d.fileno()

    def next_event(self, deadline: float | None, what: str, wake_fd: int | None = None):
        """The next event, waiting in slices until ``deadline``.

        Returns None if ``wake_fd`` became readable (someone wants us to stop).
        """
        while True:
            if self.d.pending_events():
                return self.d.next_event()
            left = remaining(deadline, what)
            wait = _SLICE if left is None else min(left, _SLICE)
            fds = [self.d.fileno()] if wake_fd is None else [self.d.fileno(), wake_fd]
            ready, _, _ = select.select(fds, [], [], wait)
            if wake_fd is not None and wake_fd in ready:
                return None

    def wait_for(self, match: Callable[[object], bool], deadline: float | None, what: str):
        """Drop events until one matches (the private window sees only what we asked for)."""
        while True:
            ev = self.next_event(deadline, what)
            if match(ev):
                return ev

    def close(self) -> None:
        try:
            self.d.close()
        except Exception:
            pass


class X11Backend(Backend):
    name = "x11"

    def __init__(self, selection: str = "CLIPBOARD", display_name: str | None = None) -> None:
        super().__init__(selection)
        if _IMPORT_ERROR is not None:  # say so before any owner process is started
            raise MissingDependency("the X11 clipboard", "python-xlib", "clipboard") from _IMPORT_ERROR
        self.display_name = display_name or os.environ.get("DISPLAY")
        if not self.display_name:
            raise InterprocError("no X display: DISPLAY is not set")
        self.last_incr = False  # whether the last get() arrived in INCR pieces

    # -- reading ---------------------------------------------------------------

    def _connect(self) -> Connection:
        return Connection(self.display_name, event_mask=X.PropertyChangeMask)

    def _has_owner(self, c: Connection) -> bool:
        return c.d.get_selection_owner(c.atom(self.selection)) != X.NONE

    def _convert(self, c: Connection, target: str, deadline: float | None) -> tuple[str, bytes] | None:
        """Ask the owner for ``target``; (property type, bytes), or None if refused."""
        what = f"reading {target!r} from the {self.selection} selection"
        sel, tgt, prop = c.atom(self.selection), c.atom(target), c.atom("_INTERPROC_SELECTION")
        c.win.delete_property(prop)
        c.win.convert_selection(sel, tgt, prop, X.CurrentTime)
        c.d.flush()
        ev = c.wait_for(
            lambda e: e.type == X.SelectionNotify and _xid(e.requestor) == c.win.id
            and e.selection == sel and e.target == tgt,
            deadline, what,
        )
        if ev.property == X.NONE:
            return None
        r = c.win.get_property(ev.property, X.AnyPropertyType, 0, _MAX_LONGS, delete=True)
        if r is None:
            raise ProtocolError(f"{what}: the owner announced data but set no property")
        ptype = c.atom_name(r.property_type)
        self.last_incr = ptype == "INCR"
        if not self.last_incr:
            return ptype, _as_bytes(r)
        # INCR: deleting the property (done above) asks for the first piece;
        # every piece is a new value we read and delete; an empty one ends it.
        pieces: list[bytes] = []
        ptype = ""
        while True:
            c.wait_for(
                lambda e: e.type == X.PropertyNotify and _xid(e.window) == c.win.id
                and e.atom == ev.property and e.state == X.PropertyNewValue,
                deadline, what,
            )
            r = c.win.get_property(ev.property, X.AnyPropertyType, 0, _MAX_LONGS, delete=True)
            if r is None:
                continue  # a stale notification; the piece it announced was already read
            piece = _as_bytes(r)
            if not piece:
                return ptype or c.atom_name(r.property_type), b"".join(pieces)
            ptype = c.atom_name(r.property_type)
            pieces.append(piece)

    @_translating
    def targets(self, timeout: float | None = None) -> list[str]:
        """The raw target names the owner answers TARGETS with."""
        deadline = deadline_of(timeout)
        c = self._connect()
        try:
            if not self._has_owner(c):
                return []
            got = self._convert(c, "TARGETS", deadline)
            if got is None:
                return []
            ptype, raw = got
            if ptype not in ("ATOM", "TARGETS") or len(raw) % 4:
                raise ProtocolError(f"the {self.selection} owner answered TARGETS with type {ptype!r}")
            atoms = memoryview(raw).cast("I").tolist()
            return [c.atom_name(a) for a in atoms if a]
        finally:
            c.close()

    def formats(self, timeout: float | None) -> list[str]:
        return formats_from_targets(self.targets(timeout))

    @_translating
    def get(self, fmt: str, timeout: float | None) -> bytes:
        check_format(fmt)
        deadline = deadline_of(timeout)
        c = self._connect()
        try:
            if not self._has_owner(c):
                raise NotFound(f"the {self.selection} selection is empty (no program owns it)")
            for target in (TEXT_TARGETS if fmt == TEXT else (fmt,)):
                got = self._convert(c, target, deadline)
                if got is None:
                    continue
                ptype, raw = got
                if fmt == TEXT and ptype == "STRING":
                    raw = raw.decode("latin-1").encode("utf-8")  # STRING is ISO 8859-1 by ICCCM
                return raw
            raise NotFound(f"the {self.selection} owner does not offer {fmt!r}")
        finally:
            c.close()

    @_translating
    def register_format(self, name: str) -> int:
        # An atom lives as long as the X server: every client interning the
        # same name gets the same number, like RegisterClipboardFormat.
        c = Connection(self.display_name)
        try:
            return int(c.atom(check_format(name)))
        finally:
            c.close()

    @_translating
    def owner_window(self) -> int:
        c = Connection(self.display_name)
        try:
            return _xid(c.d.get_selection_owner(c.atom(self.selection)))
        finally:
            c.close()

    @_translating
    def clear(self, timeout: float | None) -> None:
        c = Connection(self.display_name)
        try:
            # Owner None empties the selection; the old owner gets
            # SelectionClear (our background owner exits on it).
            xrequest.SetSelectionOwner(
                display=c.d.display, window=X.NONE, selection=c.atom(self.selection), time=X.CurrentTime
            )
            c.d.sync()
        finally:
            c.close()

    # -- owning ----------------------------------------------------------------

    def set(self, data: dict[str, bytes], timeout: float | None) -> None:
        start_owner(self.display_name, self.selection, data, timeout)

    # -- watching --------------------------------------------------------------

    def change_source(self) -> ChangeSource:
        return X11ChangeSource(self.display_name, self.selection)


def _as_bytes(reply) -> bytes:
    v = reply.value
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):  # python-xlib decodes some 8-bit data for us
        return v.encode("latin-1")
    return v.tobytes()  # array('B'|'H'|'I') for formats 8/16/32


def owner_payload(selection: str, data: dict[str, bytes]) -> tuple[dict, list[bytes]]:
    """The header and blobs sent to the owner process: each target names a blob.

    Text aliases share blobs so a large text is sent once (twice with its
    Latin-1 twin for STRING).
    """
    blobs: list[bytes] = []
    targets: dict[str, tuple[str, int]] = {}
    for fmt, value in data.items():
        offers = text_aliases(value) if fmt == TEXT else {fmt: (fmt, value)}
        for target, (ptype, blob) in offers.items():
            index = next((i for i, b in enumerate(blobs) if b is blob), None)
            if index is None:
                index = len(blobs)
                blobs.append(blob)
            targets.setdefault(target, (ptype, index))
    header = {
        "selection": selection,
        "targets": targets,
        "sizes": [len(b) for b in blobs],
    }
    return header, blobs


def start_owner(display_name: str, selection: str, data: dict[str, bytes], timeout: float | None) -> int:
    """Start a background owner serving ``data``; return its pid once it owns the selection.

    The owner is a fresh interpreter that forks once and lets the first
    process exit, so it belongs to no one (init reaps it) and outlives the
    caller.  It serves until another program takes the selection.
    """
    import json

    deadline = deadline_of(timeout)
    header, blobs = owner_payload(selection, data)
    env = dict(os.environ)
    env["DISPLAY"] = display_name
    pkg_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.Popen(
        [sys.executable, "-m", OWNER_MODULE],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        cwd="/", env=env, start_new_session=True, close_fds=True,
    )

    def feed() -> None:
        try:
            proc.stdin.write(json.dumps(header).encode() + b"\n")
            for b in blobs:
                proc.stdin.write(b)
        except (BrokenPipeError, ValueError, OSError):
            pass  # the owner failed; its message says why
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    writer = threading.Thread(target=feed, name="interproc-clipboard-feed", daemon=True)
    writer.start()
    owner_pid = None
    text = b""
    lines: list[str] = []
    ok = False
    try:
        fd = proc.stdout.fileno()
        while True:
            left = remaining(deadline, f"starting the {selection} owner")
            ready, _, _ = select.select([fd], [], [], _SLICE if left is None else min(left, _SLICE))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            text += chunk
            while b"\n" in text:
                line, text = text.split(b"\n", 1)
                s = line.decode("utf-8", "replace")
                if s.startswith("PID "):
                    owner_pid = int(s[4:])
                elif s.startswith("OWNED"):
                    ok = True
                elif s.startswith("ERROR "):
                    raise InterprocError(s[6:])
                else:
                    lines.append(s)
            if ok:
                break
        if not ok:
            detail = "\n".join(lines + [text.decode("utf-8", "replace")]).strip()
            raise InterprocError(f"the {selection} owner process failed: {detail[-800:] or 'no output'}")
        return owner_pid or 0
    except BaseException:
        if owner_pid:
            _kill(owner_pid)
        raise
    finally:
        if proc.poll() is None and not ok:
            proc.kill()
        proc.wait()  # the launcher exits right after forking; never leave it a zombie
        proc.stdout.close()
        writer.join(5)


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


class X11ChangeSource(ChangeSource):
    """XFixes selection-owner notifications on a connection of its own."""

    _REASONS = {
        0: "set",  # XFixesSetSelectionOwnerNotify
        1: "owner-destroyed",  # XFixesSelectionWindowDestroyNotify
        2: "owner-closed",  # XFixesSelectionClientCloseNotify
    }

    def __init__(self, display_name: str, selection: str) -> None:
        self.selection = selection
        self.c = Connection(display_name)
        d = self.c.d
        try:
            if not d.has_extension("XFIXES"):
                raise InterprocError(
                    f"the X server {display_name!r} has no XFIXES extension: clipboard changes cannot be watched"
                )
            d.xfixes_query_version()  # XFixes answers nothing until a client says its version
            mask = (
                xfixes.XFixesSetSelectionOwnerNotifyMask
                | xfixes.XFixesSelectionWindowDestroyNotifyMask
                | xfixes.XFixesSelectionClientCloseNotifyMask
            )
            d.xfixes_select_selection_input(self.c.root, self.c.atom(selection), mask)
            d.sync()
        except BaseException:
            self.c.close()
            raise
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()  # held by next(); close() must not pull the display away
        self._closed = False
        self._sequence = 0

    def next(self, timeout: float | None) -> Change | None:
        with self._lock:
            if self._closed:
                return None
            deadline = deadline_of(timeout)
            sel = self.c.atom(self.selection)
            while True:
                try:
                    ev = self.c.next_event(deadline, "waiting for a clipboard change", self._wake_r)
                except Timeout:
                    return None
                except xerror.ConnectionClosedError as exc:
                    raise ChannelClosed(f"the X server closed the connection: {exc}") from exc
                if ev is None:
                    return None  # close() woke us
                if isinstance(ev, xfixes.SelectionNotify) and ev.selection == sel:
                    self._sequence += 1
                    return Change(
                        selection=self.selection,
                        sequence=self._sequence,
                        owner=_xid(ev.owner),
                        reason=self._REASONS.get(ev.sub_code, "set"),
                        timestamp=int(ev.selection_timestamp),
                    )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        with self._lock:
            self.c.close()
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
