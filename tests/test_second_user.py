"""A second local user against every kind of named object (issue 8).

The test, as root, creates a throw-away user with ``useradd`` and runs the
attacker as a real process of that uid (it imports what it needs, then drops
to the uid with setgroups/setgid/setuid before touching any object, so every
access check the kernel makes is against the other user).  The attacker must
neither open, nor damage, nor squat the victim's objects: shared memory,
SharedStruct, Mutex/Semaphore/Event, mailslot, pub/sub, the shm:// listener,
the named pipe and a unix:// listener.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import uuid

import pytest

import interproc
from interproc._naming import segment_name

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="creating a second user with useradd needs root"),
    pytest.mark.skipif(shutil.which("useradd") is None, reason="useradd is not installed"),
]

KINDS = ("shm", "struct", "mutex", "semaphore", "event", "mailslot", "pub", "chanlisten")


@pytest.fixture(scope="module")
def other_user():
    login = f"iptest{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", login],
                   check=True, capture_output=True)
    try:
        pw = pwd.getpwnam(login)
        yield pw.pw_uid, pw.pw_gid
    finally:
        subprocess.run(["userdel", login], capture_output=True)


ATTACKER = """
import errno, json, os, socket, sys
spec = json.loads(sys.argv[1])
with open(spec["model"], "rb") as f:  # read as root: it is the victim's own file
    model = f.read()
os.setgroups([]); os.setgid(spec["gid"]); os.setuid(spec["uid"])
assert os.getuid() == spec["uid"] and os.geteuid() == spec["uid"]
out = {}

def attempt(key, fn):
    try:
        fn()
        out[key] = "ok"
    except OSError as exc:
        out[key] = errno.errorcode.get(exc.errno, str(exc.errno))

for path in spec["segments"]:
    attempt("rdonly " + path, lambda: os.close(os.open(path, os.O_RDONLY)))
    attempt("rdwr " + path, lambda: os.close(os.open(path, os.O_RDWR)))
    attempt("unlink " + path, lambda: os.unlink(path))
    attempt("truncate " + path, lambda: os.truncate(path, 0))
for path in spec["sockets"]:
    def connect(path=path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        finally:
            s.close()
    attempt("connect " + path, connect)
attempt("listdir runtime", lambda: os.listdir(spec["runtime"]))
for path in spec["squat"]:
    def squat(path=path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        os.write(fd, model)
        os.fchmod(fd, 0o666)
        os.close(fd)
    attempt("squat " + path, squat)
print(json.dumps(out), flush=True)
"""

VICTIM_CREATES = """
import sys, interproc
from interproc.mailslot import Mailslot
from interproc.shm import SharedMemory, Publisher
from interproc.sync import Mutex, Semaphore, Event
from interproc.shared import SharedStruct, Int64

class S(SharedStruct):
    x: Int64 = 0

makers = {
    "shm": lambda n: SharedMemory.create_or_open(n, 64), "struct": lambda n: S.attach(n),
    "mutex": Mutex, "semaphore": Semaphore, "event": Event,
    "mailslot": lambda n: Mailslot.create(n), "pub": lambda n: Publisher.create(n, 64, 4),
    "chanlisten": lambda n: interproc.listen("shm://" + n),
}
for kind, name in zip(sys.argv[1::2], sys.argv[2::2]):
    try:
        obj = makers[kind](name)
    except (interproc.PermissionDenied, interproc.AlreadyExists) as exc:
        print(kind, "REFUSED", type(exc).__name__, flush=True)
    else:
        print(kind, "CREATED", flush=True)
        obj.close()
"""


def _victim_objects(names: dict[str, str], runtime: str):
    from interproc.mailslot import Mailslot
    from interproc.pipes import NamedPipe
    from interproc.shared import Int64, SharedStruct
    from interproc.shm import Publisher, SharedMemory
    from interproc.sync import Event, Mutex, Semaphore

    class S(SharedStruct):
        x: Int64 = 0

    objs = [
        SharedMemory.create(names["shm"], 64), S.attach(names["struct"]), Mutex(names["mutex"]),
        Semaphore(names["semaphore"]), Event(names["event"]), Mailslot.create(names["mailslot"]),
        Publisher.create(names["pub"], 64, 4), interproc.listen(f"shm://{names['chanlisten']}"),
    ]
    pipe = NamedPipe.serve(names["pipe"])
    unix = interproc.listen(f"unix://{runtime}/{names['unix']}.sock")
    return objs + [pipe, unix], [pipe_path(names["pipe"]), f"{runtime}/{names['unix']}.sock"]


def pipe_path(name: str) -> str:
    from interproc._naming import object_path

    return object_path("pipe", name)


def test_a_second_user_can_neither_open_damage_nor_squat(spawn, name_factory, other_user, tmp_path):
    uid, gid = other_user
    runtime = os.environ["INTERPROC_RUNTIME_DIR"]
    names = {k: name_factory() for k in KINDS + ("pipe", "unix")}
    squat_names = {k: name_factory() for k in KINDS}
    model = tmp_path / "model"
    from interproc.shm import SharedMemory

    seg = SharedMemory.create(name_factory(), 4096)
    model.write_bytes(bytes(seg._map.buf[:]))  # a perfectly valid header, as a hostile user would copy
    seg.close()

    objs, sockets = _victim_objects(names, runtime)
    try:
        segments = [os.path.join("/dev/shm", segment_name(k, names[k])) for k in KINDS]
        assert all(os.path.exists(p) for p in segments)
        squats = [os.path.join("/dev/shm", segment_name(k, squat_names[k])) for k in KINDS]
        spec = {"uid": uid, "gid": gid, "segments": segments, "sockets": sockets, "runtime": runtime,
                "model": str(model), "squat": squats}
        out = spawn.run(ATTACKER, json.dumps(spec))
        result = json.loads(out)

        # Cannot open, unlink or truncate any of the victim's segments ...
        for path in segments:
            for op in ("rdonly", "rdwr", "unlink", "truncate"):
                assert result[f"{op} {path}"] in ("EACCES", "EPERM"), (op, path, result[f"{op} {path}"])
        # ... nor reach its sockets or even list its runtime directory.
        for path in sockets:
            assert result[f"connect {path}"] in ("EACCES", "EPERM"), (path, result[f"connect {path}"])
        assert result["listdir runtime"] == "EACCES"
        # The victim's objects still work.
        objs[2].acquire(timeout=5)
        objs[2].release()

        # Squatting: /dev/shm is shared, so the attacker CAN create the files ...
        assert all(result[f"squat {p}"] == "ok" for p in squats), result
        # ... but the victim refuses them (never maps, locks or uses them), in a
        # process of its own so that a crash would show.
        args = [x for k in KINDS for x in (k, squat_names[k])]
        lines = spawn.run(VICTIM_CREATES, *args).splitlines()
        assert len(lines) == len(KINDS)
        for line in lines:
            kind, verdict, *_ = line.split()
            assert verdict == "REFUSED", line
    finally:
        for obj in reversed(objs):
            obj.close()
        for path in [os.path.join("/dev/shm", segment_name(k, squat_names[k])) for k in KINDS]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


BIND_ABSTRACT = """
import json, os, socket, sys, time
spec = json.loads(sys.argv[1])
os.setgroups([]); os.setgid(spec["gid"]); os.setuid(spec["uid"])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\\0" + spec["abstract"])
print("BOUND", flush=True)
time.sleep(60)
"""


def test_a_second_user_cannot_squat_a_user_scope_named_pipe(spawn, name, other_user):
    # The attacker binds the only token name it can compute (a hash of the
    # path); a user-scope server's token mixes in a key from its private
    # runtime dir, so the serve below is not refused as "already served".
    from conftest import wait_for_line
    from interproc._pipes._core import lock_name as _lock_name
    from interproc.pipes import NamedPipe

    uid, gid = other_user
    attacker = spawn(BIND_ABSTRACT, json.dumps({"uid": uid, "gid": gid, "abstract": _lock_name(pipe_path(name))}))
    wait_for_line(attacker, "BOUND")
    try:
        NamedPipe.serve(name).close()
    finally:
        attacker.kill()
        attacker.wait(timeout=10)
