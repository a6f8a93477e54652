"""Named Mutex, Semaphore and Event across real processes."""

from __future__ import annotations

import signal
import subprocess
import time
from contextlib import closing

import pytest

from conftest import wait_for_line
from interproc.sync import Event, Mutex, Semaphore


def test_mutex_excludes_another_process(name, spawn):
    with closing(Mutex(name)) as m:
        assert m.created
        m.acquire()
        out = spawn.run(f"""
            from interproc.sync import Mutex
            m = Mutex({name!r})
            print(m.created, m.acquire(timeout=0.2), m.acquire(blocking=False))
            m.close()
        """)
        assert out.split() == ["False", "False", "False"]
        m.release()
    out = spawn.run(f"""
        from interproc.sync import Mutex
        m = Mutex({name!r})
        print(m.acquire(timeout=5)); m.release(); m.close()
    """)
    assert out.strip() == "True"


def test_mutex_is_recursive_and_thread_owned(name):
    import threading

    m = Mutex(name)
    try:
        assert m.acquire() and m.acquire(timeout=0)
        m.release()
        errors = []
        t = threading.Thread(target=lambda: errors.append(m.acquire(timeout=0.1)))
        t.start()
        t.join()
        assert errors == [False], "another thread must not get a held mutex"
        m.release()
        with pytest.raises(RuntimeError, match="does not hold"):
            m.release()
    finally:
        m.close()


def test_abandoned_mutex_after_sigkill(name, spawn):
    holder = spawn(f"""
        import time
        from interproc.sync import Mutex
        m = Mutex({name!r})
        m.acquire()
        print("HOLDING", flush=True)
        time.sleep(60)
    """)
    wait_for_line(holder, "HOLDING")
    m = Mutex(name)
    try:
        assert not m.acquire(timeout=0.1)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert m.acquire(timeout=10)
        assert m.abandoned
        m.release()
        assert not m.abandoned
        assert m.acquire(timeout=1) and not m.abandoned
        m.release()
    finally:
        m.close()


COUNT_CHILD = """
import sys
from interproc.shared import Int64, SharedStruct
from interproc.sync import Mutex

class Counter(SharedStruct):
    plain: Int64 = 0

name, n = sys.argv[1], int(sys.argv[2])
m = Mutex(name)
with Counter.attach(name) as c:
    for _ in range(n):
        with m:
            c.plain = c.plain + 1      # a racy read-modify-write, made safe by the mutex
m.close()
"""


def test_four_processes_increment_under_the_mutex_exactly(name, spawn):
    from interproc.shared import Int64, SharedStruct

    class Counter(SharedStruct):
        plain: Int64 = 0

    n = 1500
    with Counter.attach(name) as c:
        procs = [spawn(COUNT_CHILD, name, str(n)) for _ in range(4)]
        for p in procs:
            _, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
        assert c.plain == 4 * n


def test_semaphore_counts_across_processes(name, spawn):
    with closing(Semaphore(name, 2, maximum=3)) as sem:
        assert sem.created and sem.value == 2 and sem.maximum == 3
        out = spawn.run(f"""
            from contextlib import closing
            from interproc.sync import Semaphore
            with closing(Semaphore({name!r}, 0)) as s:     # opened: its initial value is ignored
                print(s.created, s.acquire(timeout=1), s.acquire(timeout=1), s.acquire(timeout=0.1))
        """)
        assert out.split() == ["False", "True", "True", "False"]
        assert sem.value == 0
        assert sem.release(3) == 0
        with pytest.raises(ValueError, match="maximum"):
            sem.release()


def test_semaphore_release_wakes_a_blocked_process(name, spawn):
    with closing(Semaphore(name, 0)) as sem:
        waiter = spawn(f"""
            from interproc.sync import Semaphore
            s = Semaphore({name!r}, 0)
            print("WAITING", flush=True)
            print("GOT", s.acquire(timeout=20), flush=True)
            s.close()
        """)
        wait_for_line(waiter, "WAITING")
        time.sleep(0.2)
        assert waiter.poll() is None
        sem.release()
        assert wait_for_line(waiter, "GOT") == "GOT True"
        waiter.wait(10)


def test_semaphore_bad_arguments(name):
    with pytest.raises(ValueError, match="initial"):
        Semaphore(name, 5, maximum=2)
    with pytest.raises(ValueError, match="maximum"):
        Semaphore(name, 0, maximum=0)


EVENT_WAITER = """
import sys
from interproc.sync import Event
e = Event(sys.argv[1])
print("WAITING", flush=True)
print("WOKE", e.wait(timeout=float(sys.argv[2])), flush=True)
e.close()
"""


def test_auto_reset_event_releases_exactly_one_waiter(name, spawn):
    with Event(name) as ev:
        waiters = [spawn(EVENT_WAITER, name, "1.5") for _ in range(2)]
        for w in waiters:
            wait_for_line(w, "WAITING")
        time.sleep(0.2)
        ev.set()
        results = sorted(w.communicate(timeout=20)[0].split()[-1] for w in waiters)
        assert results == ["False", "True"]
        assert not ev.is_set()


def test_manual_reset_event_releases_everyone(name, spawn):
    with Event(name, manual_reset=True) as ev:
        waiters = [spawn(EVENT_WAITER, name, "20") for _ in range(3)]
        for w in waiters:
            wait_for_line(w, "WAITING")
        ev.set()
        for w in waiters:
            assert w.communicate(timeout=20)[0].split()[-1] == "True"
        assert ev.is_set() and ev.wait(0)
        ev.reset()
        assert not ev.wait(0.05)


def test_event_kind_is_the_creators(name):
    with Event(name, manual_reset=True, initial=True) as a, Event(name, manual_reset=False) as b:
        assert not b.created and b.manual_reset and b.is_set()
        assert a.wait(0) and b.wait(0)


@pytest.mark.parametrize("what", ["mutex", "event", "semaphore"])
def test_ctrl_c_interrupts_a_blocked_wait(name, spawn, what):
    holder = None
    if what == "mutex":
        holder = spawn(f"""
            import time
            from interproc.sync import Mutex
            m = Mutex({name!r}); m.acquire()
            print("HOLDING", flush=True); time.sleep(60)
        """)
        wait_for_line(holder, "HOLDING")
    wait = {"mutex": "Mutex(name).acquire()", "event": "Event(name).wait()",
            "semaphore": "Semaphore(name, 0).acquire()"}[what]
    child = spawn(f"""
        import time
        from interproc.sync import Event, Mutex, Semaphore
        name = {name!r}
        print("BLOCKING", flush=True)
        t0 = time.monotonic()
        try:
            {wait}
        except KeyboardInterrupt:
            print("INTERRUPTED", round(time.monotonic() - t0, 2), flush=True)
    """)
    wait_for_line(child, "BLOCKING")
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    line = wait_for_line(child, "INTERRUPTED", timeout=10)
    assert line.startswith("INTERRUPTED")
    child.wait(10)
    if holder:
        holder.kill()
        holder.wait()
        Mutex(name).close()  # the next user finds the dead holder's segment and retires it


def test_timeouts_are_validated(name):
    with Event(name) as ev:
        with pytest.raises(ValueError, match="timeout"):
            ev.wait(-1)
    m = Mutex(name)
    try:
        with pytest.raises(ValueError, match="timeout"):
            m.acquire(timeout=-0.5)
    finally:
        m.close()


def test_asyncio_event_and_semaphore_wake_from_another_process(name, spawn):
    import asyncio

    from interproc import aio

    async def main() -> list:
        ev = aio.Event(name)
        sem = aio.Semaphore(name, 0)
        try:
            setter = spawn(f"""
                import time
                from interproc.sync import Event, Semaphore
                e, s = Event({name!r}), Semaphore({name!r}, 0)
                time.sleep(0.3); e.set(); s.release(); e.close(); s.close()
            """)
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            t = asyncio.create_task(ticker())
            got = await asyncio.gather(ev.wait(timeout=10), sem.acquire(timeout=10))
            t.cancel()
            setter.wait(10)
            return [*got, ticks > 5]  # the loop kept running while both waited
        finally:
            ev.close()
            sem.close()

    assert asyncio.run(main()) == [True, True, True]


def test_asyncio_wait_cancellation_gives_back_nothing_lost(name):
    import asyncio

    from interproc import aio

    async def main() -> tuple:
        sem = aio.Semaphore(name, 0)
        try:
            task = asyncio.create_task(sem.acquire())
            await asyncio.sleep(0.1)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            sem.release()
            timed_out = await sem.acquire(timeout=0.05) and not await sem.acquire(timeout=0.05)
            return timed_out, sem.value
        finally:
            sem.close()

    assert asyncio.run(main()) == (True, 0)


@pytest.mark.parametrize("bad", [True, "3"])
def test_sync_timeouts_refuse_non_numbers(name, bad):
    """timeout=True or "3" is a TypeError (not a silent 1-second wait), as everywhere else."""
    with Mutex(name) as m, Semaphore(name, 1) as s, Event(name) as e:
        for call in (m.acquire, s.acquire, e.wait):
            with pytest.raises(TypeError, match="timeout must be a number of seconds"):
                call(timeout=bad)
