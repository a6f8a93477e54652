"""Names, scopes, the runtime directory, the error tree, layering and the CLI."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import subprocess
import sys

import pytest

import interproc
from interproc import _errors, _naming

SRC = pathlib.Path(__file__).resolve().parent.parent / "src" / "interproc"


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "interproc", *args], capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(SRC.parent), **(env or {})))


def test_name_errors_name_the_bad_character():
    with pytest.raises(ValueError, match=r"character '/' at position 3"):
        _naming.validate_name("abc/def")
    with pytest.raises(ValueError, match="1..128"):
        _naming.validate_name("")
    with pytest.raises(TypeError):
        _naming.validate_name(5)
    assert _naming.validate_name("A-z_0.9") == "A-z_0.9"


def test_runtime_dir_is_created_private(tmp_path, monkeypatch):
    d = tmp_path / "rt"
    monkeypatch.setenv("INTERPROC_RUNTIME_DIR", str(d))
    assert _naming.runtime_dir() == str(d)
    assert d.stat().st_mode & 0o777 == 0o700


def test_runtime_dir_with_loose_mode_is_refused(tmp_path, monkeypatch):
    d = tmp_path / "rt"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    monkeypatch.setenv("INTERPROC_RUNTIME_DIR", str(d))
    with pytest.raises(interproc.PermissionDenied, match="0700"):
        _naming.runtime_dir()


def test_runtime_dir_owned_by_someone_else_is_refused(tmp_path, monkeypatch):
    d = tmp_path / "rt"
    d.mkdir(mode=0o700)
    os.chown(d, 65534, 65534)
    monkeypatch.setenv("INTERPROC_RUNTIME_DIR", str(d))
    with pytest.raises(interproc.PermissionDenied, match="belongs to uid 65534"):
        _naming.runtime_dir()


def test_xdg_and_tmp_fallbacks(tmp_path, monkeypatch):
    monkeypatch.delenv("INTERPROC_RUNTIME_DIR")
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    assert _naming.runtime_dir() == str(xdg / "interproc")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert _naming.runtime_dir() == f"/tmp/interproc-{os.getuid()}"


def test_error_tree_mixes_in_builtins():
    pairs = {
        interproc.AlreadyExists: FileExistsError,
        interproc.NotFound: FileNotFoundError,
        interproc.PermissionDenied: PermissionError,
        interproc.Timeout: TimeoutError,
        interproc.ChannelClosed: ConnectionError,
        interproc.MessageTooLarge: ValueError,
        interproc.ProtocolError: ValueError,
    }
    for cls, builtin in pairs.items():
        assert issubclass(cls, interproc.InterprocError) and issubclass(cls, builtin)
    err = interproc.RemoteError("KeyError", "'x'", "Traceback ...")
    assert err.type_name == "KeyError" and "KeyError" in str(err)
    import errno

    mapped = _errors.map_os_error(OSError(errno.ENOENT, "No such file"), "shm 'x'")
    assert isinstance(mapped, interproc.NotFound) and "shm 'x'" in str(mapped)


def _public_names(module) -> set[str]:
    return {n for n in vars(module) if not n.startswith("_") and n not in ("annotations",)
            and not isinstance(vars(module)[n], type(sys))}


PUBLIC_MODULES = ["interproc", "interproc.shm", "interproc.sync", "interproc.shared", "interproc.pipes",
                  "interproc.sockets", "interproc.aio", "interproc.serial", "interproc.parallel",
                  "interproc.clipboard", "interproc.mailslot"]
PUBLIC_MODULES += ["interproc.messages", "interproc.dde"]
PUBLIC_MODULES += ["interproc.rpc", "interproc.rpc.aio"]
PUBLIC_MODULES += ["interproc.objects", "interproc.objects.aio"]
PUBLIC_MODULES += ["interproc.pywin32"]


PUBLIC_MODULES += ["interproc.shmchannel"]


@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_all_is_complete_and_sorted(modname):
    import importlib

    mod = importlib.import_module(modname)
    exported = set(mod.__all__)
    assert exported == _public_names(mod) - {"__version__"}, "update __all__"
    assert list(mod.__all__) == sorted(mod.__all__)


# Layers, lowest first; a module may import only from its own layer or below.
LAYERS = [
    {"_native", "_errors", "_platform", "_naming", "_registry", "_deadline"},
    {"_shm", "shm", "_sync", "sync", "_shared", "shared", "_codec", "_channel", "_contract", "_trust",
     "_pubsub"},  # Publisher/Subscriber: built on _shm alone, re-exported by interproc.shm
    {"_framing", "_handshake", "_setup", "_stream", "_accept", "_namedpipe",
     "_pipes", "pipes", "_sockets", "sockets", "_mailslot", "mailslot", "_shmchannel",
     "_serial", "serial", "_serial_channel", "_serial_aio", "_serial_core", "_framing_cobs", "_ptypair", "_ptyrelay",
     "_parallel", "parallel", "_framing", "_address", "_schemes", "_serve", "_wait", "aio", "_clipboard", "clipboard"},
    {"rpc", "_rpc", "objects", "_objects", "dde", "_dde", "messages", "_messages"},
    {"pywin32"},  # compat: the pywin32 face over the protocols and resources
    {"cli", "_bench", "__init__", "__main__"},
]
LAYERS[0].update({"_lifecycle"})  # ResourceWarning + logger (issue 10)


LAYERS[2].add("_nats")  # nats:// transport (issue 14): the shared nats-py connection
LAYERS[2].add("shmchannel")  # interproc.shmchannel: the shm:// transport's public classes
LAYERS[2].update({"_aio_fdwait", "_aio_futex"})  # the asyncio waiters (issue 9 transport folders)


def _layer_of(top: str) -> int | None:
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    return None


def test_imports_only_go_downwards():
    problems = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        top = rel.parts[0].removesuffix(".py")
        mine = _layer_of(top)
        if mine is None:
            problems.append(f"{rel}: module {top!r} is not assigned to a layer in this test")
            continue
        tree = ast.parse(path.read_text())
        # `if TYPE_CHECKING:` imports are for type checkers only: no run-time dependency
        typing_only = {id(n) for top_node in ast.walk(tree) if isinstance(top_node, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(top_node.test)
                       for stmt in top_node.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                base = rel.parts[:-1][: len(rel.parts) - node.level]
                mod = ".".join(base + ((node.module,) if node.module else ()))
                targets = [mod] if node.module else [f"{'.'.join(base)}.{a.name}" if base else a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("interproc."):
                targets = [node.module.removeprefix("interproc.")]
            elif isinstance(node, ast.Import):
                targets = [a.name.removeprefix("interproc.") for a in node.names if a.name.startswith("interproc.")]
            for t in targets:
                dep = t.split(".")[0] if t else ""
                theirs = _layer_of(dep)
                if dep and theirs is not None and theirs > mine:
                    problems.append(f"{rel} imports {t} (layer {theirs} above {mine})")
    # `_native` is imported only by the core resources
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if "_native" in text and path.parent.name == "cli":
            problems.append(f"{path.relative_to(SRC)}: the CLI must not use _native directly")
    assert not problems, "\n".join(problems)


def test_ls_json_shows_objects_with_owner_and_gc_removes_dead_ones(name, spawn):
    from conftest import wait_for_line

    holder = spawn(f"""
        import time
        from interproc.shm import SharedMemory
        from interproc.sync import Event
        s = SharedMemory.create({name!r}, 100)
        e = Event({name!r}, manual_reset=True)
        print("READY", flush=True); time.sleep(60)
    """)
    wait_for_line(holder, "READY")
    out = run_cli("ls", "--json")
    assert out.returncode == 0, out.stderr
    mine = {(o["kind"], o["name"]): o for o in json.loads(out.stdout) if o["name"] == name}
    assert set(mine) == {("shm", name), ("event", name)}
    shm = mine[("shm", name)]
    assert shm["owner_pid"] == holder.pid and shm["size"] == 100 and shm["state"] == "alive"
    assert shm["mode"] & 0o777 == 0o600 and mine[("event", name)]["details"]["manual_reset"] is True
    table = run_cli("ls").stdout
    assert name in table and "alive" in table
    holder.kill()
    holder.wait()
    states = {o["kind"]: o["state"] for o in json.loads(run_cli("ls", "--json").stdout) if o["name"] == name}
    assert states == {"shm": "stale", "event": "stale"}
    gc = run_cli("gc")
    assert gc.returncode == 0 and gc.stdout.count(f"{name!r}") == 2
    assert not [o for o in json.loads(run_cli("ls", "--json").stdout) if o["name"] == name]


def test_shm_cli_create_info_dump_rm(name):
    assert run_cli("shm", "create", name, "4K").returncode == 0
    info = json.loads(run_cli("shm", "info", name, "--json").stdout)
    assert info["size"] == 4096 and info["state"] == "persistent"
    dump = run_cli("shm", "dump", name, "--length", "32").stdout.splitlines()
    assert dump[0].startswith("00000000  00 00") and len(dump) == 2
    assert run_cli("shm", "rm", name).returncode == 0
    missing = run_cli("shm", "dump", name)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    bad = run_cli("shm", "create", "bad name", "1K")
    assert bad.returncode == 1 and "character ' '" in bad.stderr


def test_tour_runs_the_foundation_steps():
    out = run_cli("tour", "--only", "shared", "--json")
    assert out.returncode == 0, out.stderr + out.stdout
    steps = json.loads(out.stdout)
    assert {s["method"] for s in steps} >= {"shared memory", "shared data + sync"}
    assert all(s["status"] == "ok" for s in steps)
    assert "expected 4000" in next(s["detail"] for s in steps if s["method"] == "shared data + sync")
