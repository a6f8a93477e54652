"""Clipboard pieces that need no display: backend choice, the no-display error,
input checks, format-name mapping and the per-user format registry.

The Wayland and macOS backends cannot run on this machine (no compositor, no
macOS); what is tested here is that they are chosen when they should be and
refuse what they cannot do with a clear error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from interproc import InterprocError, clipboard
from interproc._clipboard import choose
from interproc._clipboard._base import formats_from_targets, normalize, register_in_file
from interproc._clipboard._macos import MacOSBackend
from interproc._clipboard._wayland import WaylandBackend

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def has(*programs):
    return lambda name: f"/usr/bin/{name}" if name in programs else None


def test_choose_by_environment():
    linux = "linux"
    assert choose({"DISPLAY": ":0"}, linux, has()) == "x11"
    assert choose({"WAYLAND_DISPLAY": "wayland-0"}, linux, has("wl-copy", "wl-paste")) == "wayland"
    assert choose({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, linux, has("wl-copy", "wl-paste")) == "wayland"
    # Wayland without wl-clipboard but with XWayland: X11 still works.
    assert choose({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, linux, has()) == "x11"
    assert choose({}, "darwin", has()) == "macos"
    assert choose({"DISPLAY": ":0"}, "darwin", has()) == "macos"
    assert choose({"INTERPROC_CLIPBOARD": "wayland"}, linux, has()) == "wayland"


def test_no_display_is_a_clear_error_naming_what_is_missing():
    with pytest.raises(InterprocError) as info:
        choose({}, "linux", has("wl-copy", "wl-paste"))
    assert "DISPLAY" in str(info.value) and "WAYLAND_DISPLAY" in str(info.value)
    with pytest.raises(InterprocError, match="wl-clipboard"):
        choose({"WAYLAND_DISPLAY": "wayland-0"}, "linux", has())
    with pytest.raises(InterprocError, match="not a clipboard backend"):
        choose({"INTERPROC_CLIPBOARD": "gtk"}, "linux", has())
    with pytest.raises(InterprocError, match="Windows"):
        choose({}, "win32", has())
    with pytest.raises(InterprocError, match="DISPLAY"):
        choose({"DISPLAY": "", "WAYLAND_DISPLAY": ""}, "linux", has())


def test_every_public_call_fails_fast_without_a_display(spawn):
    code = """
import json, sys
from interproc import InterprocError, clipboard
calls = {
    "set_text": lambda: clipboard.set_text("x"),
    "get_text": lambda: clipboard.get_text(),
    "formats": lambda: clipboard.formats(),
    "clear": lambda: clipboard.clear(),
    "register_format": lambda: clipboard.register_format("a/b"),
    "watch": lambda: clipboard.watch(print),
    "changes": lambda: clipboard.changes(),
}
out = {}
for name, call in calls.items():
    try:
        call()
        out[name] = "no error"
    except InterprocError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "INTERPROC_CLIPBOARD")}
    env["PYTHONPATH"] = SRC
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    for name, msg in json.loads(proc.stdout).items():
        assert "DISPLAY" in msg and "WAYLAND_DISPLAY" in msg, (name, msg)


def test_cli_without_a_display_exits_1_with_the_reason():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "INTERPROC_CLIPBOARD")}
    env["PYTHONPATH"] = SRC
    proc = subprocess.run([sys.executable, "-m", "interproc", "clip", "get"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "neither DISPLAY (X11) nor WAYLAND_DISPLAY (Wayland) is set" in proc.stderr


def test_tour_step_skips_without_a_display(monkeypatch):
    from interproc.cli.tour import Skip
    from interproc.cli.tour.step_clipboard import run

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("INTERPROC_CLIPBOARD", raising=False)
    with pytest.raises(Skip, match="no DISPLAY/WAYLAND_DISPLAY"):
        run()


def test_data_is_checked_and_str_becomes_utf8():
    assert normalize({"text/plain": "é", "image/png": bytearray(b"\x89P")}) == {
        "text/plain": "é".encode(), "image/png": b"\x89P"}
    with pytest.raises(TypeError, match="mapping"):
        normalize("just text")
    with pytest.raises(ValueError, match="empty"):
        normalize({})
    with pytest.raises(TypeError, match="'text/html' must be bytes or str, not int"):
        normalize({"text/html": 3})
    with pytest.raises(ValueError, match="character"):
        normalize({"text/ html": b""})
    with pytest.raises(ValueError, match="1..255"):
        normalize({"": b""})


def test_text_targets_fold_into_text_plain_and_meta_targets_are_hidden():
    targets = ["TARGETS", "TIMESTAMP", "MULTIPLE", "UTF8_STRING", "STRING", "TEXT",
               "text/plain;charset=utf-8", "text/html", "image/png", "SAVE_TARGETS", "x-custom"]
    assert formats_from_targets(targets) == ["text/plain", "text/html", "image/png", "x-custom"]
    assert formats_from_targets([]) == []


def test_format_registry_file_gives_every_process_the_same_id(tmp_path, spawn):
    path = str(tmp_path / "formats.json")
    first = register_in_file(path, "application/x-one")
    assert 0xC000 <= first <= 0xFFFF
    code = f"""
from interproc._clipboard._base import register_in_file
print(register_in_file({path!r}, "application/x-one"), register_in_file({path!r}, "application/x-two"))
"""
    one, two = map(int, spawn.run(code).split())
    assert one == first and two != first
    assert register_in_file(path, "application/x-two") == two
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_wayland_and_macos_backends_refuse_what_they_cannot_do():
    with pytest.raises(InterprocError, match="one format per copy"):
        WaylandBackend("CLIPBOARD").set({"text/plain": b"a", "text/html": b"b"}, 1)
    with pytest.raises(InterprocError, match="PRIMARY"):
        MacOSBackend("PRIMARY")
    with pytest.raises(InterprocError, match="text/plain only"):
        MacOSBackend("CLIPBOARD").set({"image/png": b"x"}, 1)


def test_wayland_backend_names_the_missing_program(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(InterprocError, match="wl-paste.*wl-clipboard"):
        WaylandBackend("CLIPBOARD").get("text/plain", 1)


def test_public_api_is_complete():
    for name in clipboard.__all__:
        assert hasattr(clipboard, name), name
    public = {n for n in vars(clipboard) if not n.startswith("_") and n not in ("annotations", "Callable", "Mapping", "Data")}
    assert public == set(clipboard.__all__)


def test_meta_targets_cannot_be_set_as_formats():
    with pytest.raises(ValueError, match="'TARGETS' is reserved"):
        normalize({"TARGETS": b"x"})
