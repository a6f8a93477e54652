"""The background owner of an X selection: ``python -m interproc._clipboard._x11_owner``.

Started by ``clipboard.set`` on X11.  Protocol on its stdin/stdout:

* stdin: one JSON line ``{"selection", "targets": {target: [type, blob#]}, "sizes": [...]}``
  followed by the blobs, back to back;
* stdout: ``PID <pid>`` from the first process, which forks and exits at once
  (so the owner is nobody's child and outlives the caller, like xclip), then
  ``OWNED <window>`` or ``ERROR <message>`` from the owner, which then closes
  stdout and serves.

The owner answers TARGETS, TIMESTAMP, MULTIPLE and every offered target, sends data
above one request's worth with the INCR protocol, and exits once another
client takes the selection (SelectionClear) and its transfers are done, or
when the X connection dies.  On SIGTERM/SIGHUP it first hands the content to
a clipboard manager if one runs (SAVE_TARGETS), then exits.  Its window
carries ``_NET_WM_PID``.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from dataclasses import dataclass, field

from Xlib import X, Xatom
from Xlib.protocol import event as xevent

from ._x11 import INCR_STALL_SECONDS, Connection, _xid

_TS_PROP = "_INTERPROC_TIMESTAMP"
# How long a terminated owner keeps serving a clipboard manager that is saving.
HAND_OFF_SECONDS = 5.0


@dataclass
class Transfer:
    """One INCR transfer: pieces go out each time the requestor deletes the property."""

    window: object
    prop: int
    ptype: int
    data: bytes
    offset: int = 0
    done: bool = False
    last: float = field(default_factory=time.monotonic)


class Owner:
    def __init__(self, selection: str, offers: dict[str, tuple[str, bytes]]) -> None:
        self.c = Connection(None, event_mask=X.PropertyChangeMask)
        self.selection = selection
        self.sel = self.c.atom(selection)
        self.offers = {self.c.atom(t): (self.c.atom(p), b) for t, (p, b) in offers.items()}
        self.a_targets = self.c.atom("TARGETS")
        self.a_timestamp = self.c.atom("TIMESTAMP")
        self.a_incr = self.c.atom("INCR")
        self.a_multiple = self.c.atom("MULTIPLE")
        # The largest property one ChangeProperty request can carry (python-xlib
        # has no BIG-REQUESTS): anything bigger goes out with INCR.
        max_request = self.c.d.display.info.max_request_length * 4
        self.chunk = max(4096, min(1 << 20, max_request - 64) & ~3)
        self.transfers: dict[tuple[int, int], Transfer] = {}
        self.timestamp = 0
        self.lost = False

    def take(self) -> None:
        c = self.c
        c.win.change_property(c.atom("_NET_WM_PID"), Xatom.CARDINAL, 32, [os.getpid()])
        c.win.change_property(Xatom.WM_NAME, Xatom.STRING, 8, b"interproc clipboard owner")
        # ICCCM: own with a real server time, never CurrentTime.  A zero-length
        # append to our own property yields a PropertyNotify carrying it.
        ts_prop = c.atom(_TS_PROP)
        c.win.change_property(ts_prop, Xatom.STRING, 8, b"", mode=X.PropModeAppend)
        c.d.flush()
        ev = c.wait_for(
            lambda e: e.type == X.PropertyNotify and e.atom == ts_prop,
            time.monotonic() + 10, "getting a server timestamp",
        )
        self.timestamp = ev.time
        c.win.set_selection_owner(self.sel, self.timestamp)
        if _xid(c.d.get_selection_owner(self.sel)) != c.win.id:
            raise RuntimeError(f"could not take ownership of the {self.selection} selection")

    # -- requests ----------------------------------------------------------------

    def _reply(self, req, prop: int) -> None:
        ev = xevent.SelectionNotify(
            time=req.time, requestor=_xid(req.requestor), selection=req.selection,
            target=req.target, property=prop,
        )
        self._window(req.requestor).send_event(ev, event_mask=0)

    def _window(self, w):
        return self.c.d.create_resource_object("window", _xid(w))

    def _convert(self, win, target: int, prop: int) -> bool:
        """Write ``target`` into the requestor's ``prop``; False if we do not offer it."""
        if target == self.a_targets:
            atoms = [self.a_targets, self.a_timestamp, self.a_multiple, *self.offers]
            win.change_property(prop, Xatom.ATOM, 32, atoms)
        elif target == self.a_timestamp:
            win.change_property(prop, Xatom.INTEGER, 32, [self.timestamp])
        elif target in self.offers:
            ptype, data = self.offers[target]
            if len(data) <= self.chunk:
                win.change_property(prop, ptype, 8, data)
            else:
                # INCR: announce a lower bound of the size, then send a piece
                # each time the requestor deletes the property.
                win.change_attributes(event_mask=X.PropertyChangeMask)
                win.change_property(prop, self.a_incr, 32, [len(data)])
                self.transfers[(_xid(win), prop)] = Transfer(win, prop, ptype, data)
        else:
            return False
        return True

    def _convert_multiple(self, win, prop: int) -> bool:
        """MULTIPLE: the property holds (target, property) pairs; refused ones get None."""
        r = win.get_property(prop, X.AnyPropertyType, 0, 0x10000)
        if r is None or r.format != 32 or len(r.value) % 2:
            return False
        pairs = list(r.value)
        for i in range(0, len(pairs), 2):
            target, target_prop = pairs[i], pairs[i + 1]
            if target in (self.a_multiple, 0) or not target_prop or not self._convert(win, target, target_prop):
                pairs[i + 1] = X.NONE
        win.change_property(prop, r.property_type, 32, pairs)
        return True

    def on_request(self, req) -> None:
        prop = req.property or req.target  # obsolete clients pass None: use the target
        win = self._window(req.requestor)
        if req.selection != self.sel or self.lost:
            ok = False
        elif req.target == self.a_multiple:
            ok = bool(req.property) and self._convert_multiple(win, req.property)
        else:
            ok = self._convert(win, req.target, prop)
        self._reply(req, prop if ok else X.NONE)
        self.c.d.flush()

    def on_property(self, ev) -> None:
        if ev.state != X.PropertyDelete:
            return
        t = self.transfers.get((_xid(ev.window), ev.atom))
        if t is None:
            return
        piece = t.data[t.offset : t.offset + self.chunk]
        t.window.change_property(t.prop, t.ptype, 8, piece)
        t.offset += len(piece)
        t.last = time.monotonic()
        if not piece:  # the zero-length piece just written ends the transfer
            self._finish(t)
        self.c.d.flush()

    def _finish(self, t: Transfer) -> None:
        key = (_xid(t.window), t.prop)
        self.transfers.pop(key, None)
        if not any(k[0] == key[0] for k in self.transfers):
            t.window.change_attributes(event_mask=0)

    def _drop_dead(self) -> None:
        # A requestor that died or stopped reading must not keep us alive.
        bad = {getattr(e, "resource_id", None) for e in self.c.errors}
        self.c.errors.clear()
        now = time.monotonic()
        for key, t in list(self.transfers.items()):
            if key[0] in bad or now - t.last > INCR_STALL_SECONDS:
                self.transfers.pop(key, None)

    def hand_off(self) -> float | None:
        """Asked to stop: offer the content to a clipboard manager (SAVE_TARGETS).

        Returns how long to keep serving while the manager copies, or None
        when there is no manager (or nothing left to save) and we can go.
        freedesktop.org ClipboardManager spec: convert CLIPBOARD_MANAGER to
        SAVE_TARGETS with a property listing the targets worth saving; the
        manager fetches them from us, then answers with a SelectionNotify.
        """
        if self.lost or self.selection != "CLIPBOARD":
            return None
        manager = self.c.atom("CLIPBOARD_MANAGER")
        if self.c.d.get_selection_owner(manager) == X.NONE:
            return None
        prop = self.c.atom("_INTERPROC_SAVE_TARGETS")
        self.c.win.change_property(prop, Xatom.ATOM, 32, list(self.offers))
        self.c.win.convert_selection(manager, self.c.atom("SAVE_TARGETS"), prop, X.CurrentTime)
        self.c.d.flush()
        return time.monotonic() + HAND_OFF_SECONDS

    def serve(self, wake_fd: int) -> None:
        d = self.c.d
        manager = self.c.atom("CLIPBOARD_MANAGER")
        saving_until: float | None = None
        while True:
            while d.pending_events():
                ev = d.next_event()
                if ev.type == X.SelectionRequest:
                    self.on_request(ev)
                elif ev.type == X.SelectionClear and ev.atom == self.sel:
                    self.lost = True
                elif ev.type == X.PropertyNotify:
                    self.on_property(ev)
                elif ev.type == X.SelectionNotify and ev.selection == manager and saving_until:
                    return  # the manager has the content (or refused it): either way we are done
            self._drop_dead()
            if self.lost and not self.transfers:
                return
            if saving_until is not None and time.monotonic() > saving_until:
                return
            ready, _, _ = select.select([d.fileno(), wake_fd], [], [], 1.0)
            if wake_fd in ready:
                os.read(wake_fd, 64)
                if saving_until is None:
                    saving_until = self.hand_off()
                    if saving_until is None:
                        return


def _stop_on_signals() -> int:
    """SIGTERM/SIGHUP (logout, kill) wake the serve loop through a pipe, which then hands off."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: os.write(w, b"s"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # not ours: we have no terminal
    return r


def _read_exact(f, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            raise EOFError(f"owner input ended after {got} of {n} bytes")
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def _detach_stdio() -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def main() -> int:
    out = sys.stdout.buffer
    pid = os.fork()
    if pid:
        out.write(f"PID {pid}\n".encode())
        out.flush()
        os._exit(0)
    try:
        inp = sys.stdin.buffer
        header = json.loads(inp.readline())
        blobs = [_read_exact(inp, n) for n in header["sizes"]]
        offers = {t: (ptype, blobs[i]) for t, (ptype, i) in header["targets"].items()}
        owner = Owner(header["selection"], offers)
        owner.take()
    except Exception as exc:
        out.write(f"ERROR {type(exc).__name__}: {exc}\n".encode())
        out.flush()
        return 1
    wake = _stop_on_signals()
    out.write(f"OWNED {owner.c.win.id}\n".encode())
    out.flush()
    _detach_stdio()
    del blobs, offers
    try:
        owner.serve(wake)
    except Exception:
        return 1  # the X server went away: nothing left to serve
    return 0


if __name__ == "__main__":
    sys.exit(main())
