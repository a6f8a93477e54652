"""Clipboard latency and throughput on X11: ``python benchmarks/clipboard_roundtrip.py``.

Uses $DISPLAY, or starts a private Xvfb when there is none.  Prints the
median of several runs for: set (starting the background owner), get of a
short text, formats(), a large image/png in both directions against xclip,
and the delay from clear() to a watcher's callback.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time


def start_xvfb() -> tuple[subprocess.Popen, str]:
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-nolisten", "tcp", "-noreset"],
                            pass_fds=[w], stderr=subprocess.DEVNULL)
    os.close(w)
    buf = b""
    while not buf.endswith(b"\n"):
        buf += os.read(r, 64)
    os.close(r)
    return proc, f":{int(buf)}"


def median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    xvfb = None
    if not os.environ.get("DISPLAY"):
        xvfb, os.environ["DISPLAY"] = start_xvfb()
    from interproc import clipboard
    from interproc._clipboard._x11 import X11Backend

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 8 * 1024 * 1024
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(size)
    try:
        print(f"display {os.environ['DISPLAY']}, large payload {size / 2**20:.1f} MiB")
        print(f"set_text (spawns the owner)      {median_ms(lambda: clipboard.set_text('hello'), 10):8.1f} ms")
        print(f"get_text, 5 bytes                {median_ms(clipboard.get_text, 50):8.2f} ms")
        print(f"formats()                        {median_ms(clipboard.formats, 50):8.2f} ms")
        t = median_ms(lambda: clipboard.set({"image/png": png}), 3)
        print(f"set image/png                    {t:8.1f} ms")
        b = X11Backend()
        t = median_ms(lambda: b.get("image/png", 60), 3)
        print(f"get image/png (INCR, interproc)  {t:8.1f} ms  {size / 2**20 / (t / 1000):6.1f} MiB/s")
        t = median_ms(lambda: subprocess.run(["xclip", "-o", "-selection", "clipboard", "-t", "image/png"],
                                             stdout=subprocess.DEVNULL, check=True), 3)
        print(f"xclip -o image/png from owner    {t:8.1f} ms  {size / 2**20 / (t / 1000):6.1f} MiB/s")
        xc = subprocess.Popen(["xclip", "-i", "-quiet", "-selection", "clipboard", "-t", "image/png"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        xc.stdin.write(png)
        xc.stdin.close()
        while b.formats(5) != ["image/png"] or b.get("image/png", 60) != png:
            time.sleep(0.05)
        t = median_ms(lambda: b.get("image/png", 60), 3)
        print(f"get image/png from xclip (INCR)  {t:8.1f} ms  {size / 2**20 / (t / 1000):6.1f} MiB/s")
        clipboard.clear()
        xc.wait(10)
        delays = []
        seen = threading.Event()
        with clipboard.watch(lambda change: seen.set()):
            for _ in range(20):
                clipboard.set_text("w")
                time.sleep(0.05)
                seen.clear()
                t0 = time.perf_counter()
                clipboard.clear()
                seen.wait(5)
                delays.append(time.perf_counter() - t0)
        print(f"clear() -> watch callback        {statistics.median(delays) * 1000:8.2f} ms")
    finally:
        clipboard.clear()
        if xvfb is not None:
            time.sleep(0.2)
            xvfb.terminate()
            xvfb.wait()


if __name__ == "__main__":
    main()
