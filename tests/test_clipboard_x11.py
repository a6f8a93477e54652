"""interproc.clipboard on a real X server (Xvfb), with xclip as the other program."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest

from clipboard_xvfb import owner_pids, wait_gone, x11, xclip, xvfb  # noqa: F401
from conftest import wait_for_line

from interproc import InterprocError, NotFound, ProtocolError, Timeout, clipboard
from interproc._clipboard._x11 import X11Backend

pytestmark = pytest.mark.display

MB = 1024 * 1024


def big_png(size: int) -> bytes:
    """A PNG signature and IHDR chunk followed by ``size`` bytes of (incompressible) filler."""
    ihdr = struct.pack(">IIBBBBB", 1024, 1024, 8, 6, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + os.urandom(size)


# -- text ------------------------------------------------------------------------


def test_set_text_is_read_by_xclip_under_every_text_target(xclip):
    clipboard.set_text("grüße, 世界")
    assert xclip.out().decode() == "grüße, 世界"
    assert xclip.out("UTF8_STRING").decode() == "grüße, 世界"
    assert xclip.out("text/plain;charset=utf-8").decode() == "grüße, 世界"
    assert xclip.out("STRING") == "grüße, ??".encode("latin-1")  # ICCCM STRING is Latin-1
    targets = xclip.out("TARGETS").decode().split()
    for t in ("TARGETS", "TIMESTAMP", "MULTIPLE", "UTF8_STRING", "STRING", "TEXT", "text/plain"):
        assert t in targets
    assert clipboard.get_text() == "grüße, 世界"


def test_text_copied_by_xclip_is_read(xclip):
    xclip.copy("from xclip ✓".encode())
    assert clipboard.get_text() == "from xclip ✓"
    assert clipboard.formats() == ["text/plain"]


def test_latin1_string_target_is_converted_to_utf8(xclip):
    xclip.copy("café".encode("latin-1"), target="STRING")
    assert clipboard.get_text() == "café"


def test_timestamp_target_answers_an_integer(xclip):
    clipboard.set_text("t")
    raw = xclip.out("TIMESTAMP")
    assert raw.strip().isdigit() or len(raw) > 0


# -- HTML, formats, custom formats ----------------------------------------------------


def test_html_both_ways_and_formats_in_order(xclip):
    clipboard.set({"text/plain": "hi", "text/html": "<b>hi</b>", "application/json": b'{"a": 1}'})
    assert clipboard.formats() == ["text/plain", "text/html", "application/json"]
    assert xclip.out("text/html") == b"<b>hi</b>"
    assert xclip.out("application/json") == b'{"a": 1}'
    xclip.copy(b"<i>from xclip</i>", target="text/html")
    assert clipboard.formats() == ["text/html"]
    assert clipboard.get("text/html") == b"<i>from xclip</i>"


def test_a_format_the_owner_does_not_offer_is_not_found(x11):
    clipboard.set({"text/html": "<b>only html</b>"})
    with pytest.raises(NotFound, match="does not offer 'text/plain'"):
        clipboard.get_text()
    with pytest.raises(NotFound, match="does not offer 'image/png'"):
        clipboard.get("image/png")


def test_custom_format_has_one_id_in_every_process_and_crosses_to_xclip(xclip, spawn):
    fmt = "application/x-interproc-custom"
    here = clipboard.register_format(fmt)
    there = int(spawn.run(f"from interproc import clipboard; print(clipboard.register_format({fmt!r}))"))
    assert here == there > 0
    assert clipboard.register_format("application/x-interproc-other") != here
    clipboard.set({fmt: b"\x00\x01binary\xff"})
    assert xclip.out(fmt) == b"\x00\x01binary\xff"
    assert clipboard.formats() == [fmt]
    xclip.copy(b"back", target=fmt)
    assert clipboard.get(fmt) == b"back"


# -- large data: INCR both ways -------------------------------------------------------


def test_multi_megabyte_png_served_with_incr_to_xclip(xclip):
    png = big_png(6 * MB)
    clipboard.set({"image/png": png})
    assert xclip.out("image/png") == png
    backend = X11Backend()
    assert backend.get("image/png", 30) == png
    assert backend.last_incr, "6 MB must arrive in INCR pieces (python-xlib has no BIG-REQUESTS)"


def test_multi_megabyte_png_from_xclip_read_with_incr(xclip, tmp_path):
    png = big_png(5 * MB)
    xclip.copy(png, target="image/png")
    backend = X11Backend()
    assert backend.get("image/png", 30) == png
    assert backend.last_incr, "xclip sends more than ~1 MB with INCR"


def test_large_text_both_ways(xclip):
    text = ("0123456789abcdef" * 64 + "\n") * 3000  # ~3 MB
    clipboard.set_text(text)
    assert xclip.out().decode() == text
    xclip.copy(text.upper().encode())
    assert clipboard.get_text(timeout=30) == text.upper()


# -- ownership and lifetime -------------------------------------------------------------


def test_content_survives_the_setting_process(xclip, spawn, x11):
    out = spawn.run(
        "from interproc import clipboard\n"
        "clipboard.set({'text/plain': 'left behind', 'image/png': b'\\x89PNG fake'})\n"
        "print('SET')\n"
    )
    assert out.strip() == "SET"  # the setter has exited (spawn.run waited for it)
    assert xclip.out().decode() == "left behind"
    assert xclip.out("image/png") == b"\x89PNG fake"
    owners = owner_pids(x11)
    assert len(owners) == 1
    assert os.getppid() != owners[0]
    with open(f"/proc/{owners[0]}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[1]) != os.getpid(), "the owner must not be our child"


def test_owner_exits_when_another_program_copies(xclip, x11):
    clipboard.set_text("mine")
    [pid] = owner_pids(x11)
    xclip.copy(b"theirs")
    assert wait_gone([pid]) == [], "the background owner kept running after losing the selection"
    assert clipboard.get_text() == "theirs"


def test_a_second_set_replaces_the_first_owner(x11):
    clipboard.set_text("one")
    [first] = owner_pids(x11)
    clipboard.set_text("two")
    assert wait_gone([first]) == []
    assert clipboard.get_text() == "two"
    assert len(owner_pids(x11)) == 1


def test_clear_empties_and_ends_the_owner(x11):
    clipboard.set_text("x")
    [pid] = owner_pids(x11)
    clipboard.clear()
    assert wait_gone([pid]) == []
    assert clipboard.formats() == []
    with pytest.raises(NotFound, match="empty"):
        clipboard.get_text()


def test_primary_is_separate_from_clipboard(xclip):
    clipboard.set_text("board")
    clipboard.set_text("middle click", selection="PRIMARY")
    assert xclip.out(selection="primary").decode() == "middle click"
    assert xclip.out(selection="clipboard").decode() == "board"
    assert clipboard.get_text(selection="PRIMARY") == "middle click"


# -- change notification ----------------------------------------------------------------


def test_watch_callback_runs_on_a_change_made_by_xclip(xclip):
    seen: list[clipboard.Change] = []
    arrived = threading.Event()

    def on_change(change):
        seen.append(change)
        arrived.set()

    with clipboard.watch(on_change) as watcher:
        xclip.copy(b"ping")
        assert arrived.wait(10), "no change reported"
        arrived.clear()
        clipboard.clear()
        assert arrived.wait(10), "clearing was not reported"
    assert watcher.closed and not watcher.errors
    assert seen[0].reason == "set" and seen[0].owner != 0 and seen[0].sequence == 1
    assert seen[-1].owner == 0 and seen[-1].sequence == len(seen)


def test_watch_does_not_report_without_a_change(x11):
    seen = []
    watcher = clipboard.watch(seen.append)
    assert clipboard.formats() == []  # a read is not a change
    watcher.close()
    assert seen == []


def test_changes_iterator_ends_after_timeout_and_reports_changes(xclip):
    with clipboard.changes(timeout=0.2) as stream:
        assert list(stream) == []
    with clipboard.changes(timeout=10) as stream:
        xclip.copy(b"iter")
        change = next(stream)
        assert change.reason == "set" and change.owner != 0
        with pytest.raises(Timeout):
            stream.next_change(timeout=0.1)


def test_two_interproc_processes_one_sets_one_watches_and_gets(spawn, x11):
    watcher = spawn(
        "from interproc import clipboard\n"
        "with clipboard.changes(timeout=20) as ch:\n"
        "    print('READY', flush=True)\n"
        "    change = next(ch)\n"
        "    print('GOT', change.reason, clipboard.get_text(), clipboard.get('text/html').decode(), flush=True)\n"
    )
    wait_for_line(watcher, "READY")
    spawn.run("from interproc import clipboard; clipboard.set({'text/plain': 'from A', 'text/html': '<p>A</p>'})")
    assert wait_for_line(watcher, "GOT") == "GOT set from A <p>A</p>"
    watcher.wait(10)


def test_two_interproc_processes_large_transfer(spawn, x11):
    png = big_png(3 * MB)
    clipboard.set({"image/png": png})
    out = spawn.run(
        "import hashlib, sys\n"
        "from interproc import clipboard\n"
        "print(hashlib.sha256(clipboard.get('image/png', timeout=30)).hexdigest())\n"
    )
    import hashlib

    assert out.strip() == hashlib.sha256(png).hexdigest()


# -- errors and timeouts ------------------------------------------------------------------


def test_owner_that_never_answers_gives_timeout_not_a_hang(x11):
    from Xlib import X, display

    d = display.Display(x11)
    try:
        w = d.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        w.set_selection_owner(d.intern_atom("CLIPBOARD"), X.CurrentTime)
        d.sync()  # we own it now, and never read our events
        with pytest.raises(Timeout, match="timed out"):
            clipboard.get_text(timeout=0.5)
        with pytest.raises(Timeout):
            clipboard.formats(timeout=0.3)
    finally:
        d.close()


def test_bad_input_is_rejected_before_anything_happens(x11):
    with pytest.raises(ValueError, match="empty"):
        clipboard.set({})
    with pytest.raises(TypeError, match="must be bytes or str"):
        clipboard.set({"text/plain": 5})
    with pytest.raises(ValueError, match="character ' '"):
        clipboard.get("text plain")
    with pytest.raises(ValueError, match="selection"):
        clipboard.get_text(selection="SECONDARY")
    with pytest.raises(TypeError):
        clipboard.set_text(b"bytes")
    with pytest.raises(TypeError, match="callable"):
        clipboard.watch(None)
    assert owner_pids(x11) == []


def test_unreachable_display_is_a_clear_error(x11, monkeypatch):
    monkeypatch.setenv("DISPLAY", ":4999")
    with pytest.raises(InterprocError, match=":4999"):
        clipboard.get_text()


# -- CLI ----------------------------------------------------------------------------------


def _cli(*args, timeout=30, input=None):
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "interproc", "clip", *args], env=env,
                          capture_output=True, timeout=timeout, input=input)


def test_cli_set_get_formats(xclip, tmp_path):
    assert _cli("set", "cli text").returncode == 0
    assert xclip.out() == b"cli text"
    p = _cli("get")
    assert p.returncode == 0 and p.stdout == b"cli text"
    assert _cli("formats").stdout.decode().split() == ["text/plain"]
    raw = _cli("formats", "--raw").stdout.decode().split()
    assert raw[:3] == ["TARGETS", "TIMESTAMP", "MULTIPLE"] and "UTF8_STRING" in raw
    assert _cli("set", "-", input="from stdin ✓".encode()).returncode == 0
    assert clipboard.get_text() == "from stdin ✓"
    blob = tmp_path / "x.png"
    blob.write_bytes(big_png(1000))
    assert _cli("set", "--file", str(blob), "--format", "image/png").returncode == 0
    assert xclip.out("image/png") == blob.read_bytes()
    out = tmp_path / "out.png"
    assert _cli("get", "--format", "image/png", "-o", str(out)).returncode == 0
    assert out.read_bytes() == blob.read_bytes()
    p = _cli("get", "--format", "text/html")
    assert p.returncode == 1 and b"does not offer 'text/html'" in p.stderr


def test_cli_watch_counts_changes(xclip, spawn):
    env = {"PYTHONPATH": os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")}
    watcher = spawn("import sys; from interproc.cli import main; sys.exit(main(['clip', 'watch', '--count', '1']))", env=env)
    wait_for_line(watcher, "watching CLIPBOARD (x11)")
    xclip.copy(b"watch me")
    line = wait_for_line(watcher, "1 CLIPBOARD set owner=0x")
    assert line.startswith("1 CLIPBOARD set")
    assert watcher.wait(10) == 0


# -- misbehaving owners (another process speaking bad ICCCM) ---------------------------

BAD_OWNER = r"""
import sys
from Xlib import X, Xatom, display
from Xlib.protocol import event
mode = sys.argv[1]
d = display.Display()
w = d.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
sel = d.intern_atom("CLIPBOARD")
w.set_selection_owner(sel, X.CurrentTime)
d.sync()
print("READY", flush=True)
while True:
    ev = d.next_event()
    if ev.type != X.SelectionRequest:
        continue
    req = d.create_resource_object("window", ev.requestor.id)
    if mode == "bad-targets":
        req.change_property(ev.property, Xatom.STRING, 8, b"not atoms")
    elif mode == "bad-atoms":
        req.change_property(ev.property, Xatom.ATOM, 32, [0x0FFFFFF0, 0x0FFFFFF1])
    elif mode == "incr-stall":
        req.change_property(ev.property, d.intern_atom("INCR"), 32, [10 ** 6])
    elif mode == "no-property":
        pass
    req.send_event(event.SelectionNotify(time=ev.time, requestor=ev.requestor.id, selection=ev.selection,
                                         target=ev.target, property=ev.property))
    d.flush()
"""


@pytest.mark.parametrize("mode, call, error, message", [
    ("bad-targets", lambda: clipboard.formats(timeout=5), ProtocolError,
     "answered TARGETS with type 'STRING'"),
    ("bad-atoms", lambda: clipboard.formats(timeout=5), ProtocolError, "rejected"),
    ("no-property", lambda: clipboard.get_text(timeout=5), ProtocolError, "set no property"),
    ("incr-stall", lambda: clipboard.get("image/png", timeout=0.5), Timeout, "timed out"),
])
def test_misbehaving_owner_gives_a_clear_error(spawn, x11, mode, call, error, message):
    owner = spawn(BAD_OWNER, mode)
    wait_for_line(owner, "READY")
    with pytest.raises(error, match=message):
        call()


def test_a_wait_for_a_stalled_owner_is_interrupted_by_ctrl_c(spawn, x11):
    import signal

    owner = spawn(BAD_OWNER, "incr-stall")
    wait_for_line(owner, "READY")
    reader = spawn(
        "from interproc import clipboard\n"
        "print('READING', flush=True)\n"
        "clipboard.get('image/png', timeout=None)\n"
    )
    wait_for_line(reader, "READING")
    time.sleep(0.3)  # let it reach the wait; the point is that a signal ends any wait
    reader.send_signal(signal.SIGINT)
    _, err = reader.communicate(timeout=10)
    assert reader.returncode != 0 and "KeyboardInterrupt" in err


def test_owner_answers_multiple_with_one_refused_pair(x11):
    """ICCCM MULTIPLE, asked by a raw X client (this process) of the owner process."""
    from Xlib import X, display

    png = big_png(2 * MB)  # one pair goes by INCR
    clipboard.set({"text/html": "<b>m</b>", "image/png": png})
    d = display.Display(x11)
    try:
        w = d.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent, event_mask=X.PropertyChangeMask)
        a = d.intern_atom
        pairs = [a("text/html"), a("P1"), a("image/png"), a("P2"), a("image/gif"), a("P3")]
        w.change_property(a("PAIRS"), a("ATOM_PAIR"), 32, pairs)
        w.convert_selection(a("CLIPBOARD"), a("MULTIPLE"), a("PAIRS"), X.CurrentTime)
        d.flush()
        while True:
            ev = d.next_event()
            if ev.type == X.SelectionNotify:
                break
        assert ev.property == a("PAIRS")
        answered = list(w.get_property(a("PAIRS"), X.AnyPropertyType, 0, 100).value)
        assert answered == pairs[:5] + [X.NONE]  # image/gif refused
        assert bytes(w.get_property(a("P1"), X.AnyPropertyType, 0, 100).value) == b"<b>m</b>"
        incr = w.get_property(a("P2"), X.AnyPropertyType, 0, 100, delete=True)
        assert d.get_atom_name(incr.property_type) == "INCR"
        pieces = []
        while True:
            ev = d.next_event()
            if ev.type == X.PropertyNotify and ev.atom == a("P2") and ev.state == X.PropertyNewValue:
                piece = w.get_property(a("P2"), X.AnyPropertyType, 0, 1 << 28, delete=True).value
                if not piece:
                    break
                pieces.append(bytes(piece))
        assert b"".join(pieces) == png
    finally:
        d.close()


def test_a_dropped_watcher_is_stopped_by_its_finalizer(x11):
    import gc

    seen = []
    watcher = clipboard.watch(seen.append)
    thread = watcher._thread
    del watcher
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


# -- hand-off to a clipboard manager ---------------------------------------------------------

MANAGER = r"""
from Xlib import X, display
from Xlib.protocol import event
from interproc._clipboard._x11 import X11Backend
d = display.Display()
w = d.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
manager, save = d.intern_atom("CLIPBOARD_MANAGER"), d.intern_atom("SAVE_TARGETS")
w.set_selection_owner(manager, X.CurrentTime)
d.sync()
print("READY", flush=True)
while True:
    ev = d.next_event()
    if ev.type == X.SelectionRequest and ev.target == save:
        req = d.create_resource_object("window", ev.requestor.id)
        asked = req.get_property(ev.property, X.AnyPropertyType, 0, 1000)
        names = sorted(d.get_atom_name(a) for a in asked.value)
        b = X11Backend("CLIPBOARD")  # a real manager would now copy every target and take CLIPBOARD
        text, png = b.get("text/plain", 10).decode(), b.get("image/png", 10)
        print("SAVED", text, len(png), ",".join(names), flush=True)
        req.send_event(event.SelectionNotify(time=ev.time, requestor=ev.requestor.id, selection=ev.selection,
                                             target=ev.target, property=ev.property))
        d.flush()
        break
"""


def test_terminated_owner_hands_off_to_a_clipboard_manager(spawn, x11):
    import signal

    manager = spawn(MANAGER)
    wait_for_line(manager, "READY")
    png = big_png(MB)  # the manager reads it with INCR while the owner is stopping
    clipboard.set({"text/plain": "keep me", "image/png": png})
    [owner] = owner_pids(x11)
    os.kill(owner, signal.SIGTERM)
    saved = wait_for_line(manager, "SAVED")
    text, size, names = saved.split(" ", 1)[1].rsplit(" ", 2)
    assert text == "keep me" and int(size) == len(png)
    assert {"image/png", "UTF8_STRING", "STRING"} <= set(names.split(","))
    assert "TARGETS" not in names.split(",")
    assert wait_gone([owner]) == [], "the owner did not exit after the manager saved"


def test_terminated_owner_without_a_manager_just_exits(x11):
    import signal

    clipboard.set_text("gone soon")
    [owner] = owner_pids(x11)
    os.kill(owner, signal.SIGTERM)
    assert wait_gone([owner]) == []
    assert clipboard.formats() == []  # the owner's window died with it
