"""The pywin32 face against native interproc, in one run (what the face costs).

    PYTHONPATH=src python benchmarks/pywin32_face.py [--quick]

* ``pipe_rtt``   — 100 B message round trip on a connected named pipe: native
  ``PipeChannel.send``/``recv`` vs the face's ``WriteFile`` + ``ReadFile`` and
  ``TransactNamedPipe`` (echo server: a native interproc process).
* ``call``       — connect + one request/reply + close: native vs ``CallNamedPipe``.
* ``event_rtt``  — two processes ping-pong two auto-reset events: the face's
  ``WaitForSingleObject`` (a native futex wait) vs ``WaitForMultipleObjects``
  (polled: several futexes in shared memory cannot be waited on at once).

Ratios are face / native (>1: the face is slower).  Every wait is bounded.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
sys.path.insert(0, SRC)
ENV = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))

import interproc.pywin32  # noqa: E402

interproc.pywin32.install()
import win32event  # noqa: E402
import win32file  # noqa: E402
import win32pipe  # noqa: E402

from interproc.pipes import NamedPipe  # noqa: E402

ECHO = textwrap.dedent("""
    import sys
    from interproc.pipes import NamedPipe
    srv = NamedPipe.serve(sys.argv[1], mode="message")
    print("READY", flush=True)
    while True:
        ch = srv.accept(timeout=60)
        try:
            while True:
                ch.send(ch.recv(timeout=60))
        except Exception:
            ch.close()
""")

PONG = textwrap.dedent("""
    import sys, interproc.pywin32 as p
    p.install()
    import win32event
    a = win32event.OpenEvent(0x1F0003, 0, sys.argv[1] + "-a")
    b = win32event.OpenEvent(0x1F0003, 0, sys.argv[1] + "-b")
    idle = win32event.CreateEvent(None, 0, 0, None)
    for _ in range(int(sys.argv[3])):
        if sys.argv[2] == "multi":
            win32event.WaitForMultipleObjects([idle, a], 0, 10000)
        else:
            win32event.WaitForSingleObject(a, 10000)
        win32event.SetEvent(b)
""")


def per_call(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main() -> None:
    quick = "--quick" in sys.argv
    n, m = (500, 50) if quick else (3000, 300)
    name = f"bench-face-{os.getpid()}"
    echo = subprocess.Popen([sys.executable, "-c", ECHO, name], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout.readline().strip() == "READY"
        msg = b"x" * 100
        ch = NamedPipe.connect(name, timeout=10)
        native = per_call(lambda: (ch.send(msg), ch.recv(timeout=10)), n)
        ch.close()
        h = win32file.CreateFile("\\\\.\\pipe\\" + name, win32file.GENERIC_READ | win32file.GENERIC_WRITE,
                                 0, None, win32file.OPEN_EXISTING, 0, None)
        win32pipe.SetNamedPipeHandleState(h, win32pipe.PIPE_READMODE_MESSAGE, None, None)
        face = per_call(lambda: (win32file.WriteFile(h, msg), win32file.ReadFile(h, 4096)), n)
        trans = per_call(lambda: win32pipe.TransactNamedPipe(h, msg, 4096), n)
        h.Close()

        def native_call():
            c = NamedPipe.connect(name, timeout=10)
            c.send(msg)
            c.recv(timeout=10)
            c.close()

        ncall = per_call(native_call, m)
        fcall = per_call(lambda: win32pipe.CallNamedPipe("\\\\.\\pipe\\" + name, msg, 4096, 10000), m)
    finally:
        echo.kill()
        echo.wait()
    print(f"pipe_rtt  native {native * 1e6:7.1f} us | WriteFile+ReadFile {face * 1e6:7.1f} us "
          f"x{face / native:.2f} | TransactNamedPipe {trans * 1e6:7.1f} us x{trans / native:.2f}")
    print(f"call      native {ncall * 1e6:7.0f} us | CallNamedPipe {fcall * 1e6:7.0f} us x{fcall / ncall:.2f}")

    a = win32event.CreateEvent(None, 0, 0, name + "-a")
    b = win32event.CreateEvent(None, 0, 0, name + "-b")
    idle = win32event.CreateEvent(None, 0, 0, None)
    rtt = {}
    rounds = 100 if quick else 300
    for mode in ("single", "multi"):
        child = subprocess.Popen([sys.executable, "-c", PONG, name, mode, str(rounds)], env=ENV)
        time.sleep(1.0)  # let it open the events and block

        def ping():
            win32event.SetEvent(a)
            if mode == "multi":
                win32event.WaitForMultipleObjects([idle, b], 0, 10000)
            else:
                win32event.WaitForSingleObject(b, 10000)

        rtt[mode] = per_call(ping, rounds)
        child.wait(30)
    for h in (a, b, idle):
        h.Close()
    print(f"event_rtt WaitForSingleObject {rtt['single'] * 1e6:7.0f} us | WaitForMultipleObjects "
          f"{rtt['multi'] * 1e6:7.0f} us x{rtt['multi'] / rtt['single']:.1f}")


if __name__ == "__main__":
    main()
