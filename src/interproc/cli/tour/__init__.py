"""``interproc tour``: each IPC method, run between two real processes.

A step is a module ``step_<topic>.py`` in this package defining
``STEPS = [Step(...)]``.  A step's ``run()`` starts the other process with
:func:`spawn_child` (a fresh ``python`` running ``module:function``), plays
its own side, and returns one line saying what happened; it raises
:class:`Skip` to explain why it cannot run here.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from ..._errors import MissingDependency


class Skip(Exception):
    """Raised by a step that cannot run on this machine; the message says why."""


@dataclass
class Step:
    order: int  # position in the tour: methods roughly in DESIGN.md's order
    method: str  # the classic method, e.g. "shared memory"
    run: Callable[[], str]


@dataclass
class Outcome:
    step: Step
    status: str  # ok | skipped | FAILED
    detail: str
    seconds: float


def unique(prefix: str) -> str:
    """A name no other tour run uses."""
    return f"tour.{prefix}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


class ChildProcess:
    """The other process of a step; killed and reaped on exit, whatever happened."""

    def __init__(self, target: str, *args: Any) -> None:
        cmd = [sys.executable, "-m", "interproc.cli.tour._child", target, json.dumps(args)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self, timeout: float = 30) -> Any:
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError(f"child failed ({self.proc.returncode}): {err.strip()[-500:]}")
        return json.loads(out.strip().splitlines()[-1])

    def __enter__(self) -> "ChildProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def spawn_child(target: str, *args: Any) -> ChildProcess:
    """Run ``module:function(*args)`` in a new Python process; its return value
    (JSON-serialisable) comes back from :meth:`ChildProcess.result`."""
    return ChildProcess(target, *args)


def all_steps() -> list[Step]:
    steps: list[Step] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("step_"):
            steps.extend(importlib.import_module(f"{__name__}.{info.name}").STEPS)
    return sorted(steps, key=lambda s: s.order)


def run_tour(only: str | None = None) -> list[Outcome]:
    outcomes = []
    for step in all_steps():
        if only and only.lower() not in step.method.lower():
            continue
        t0 = time.perf_counter()
        try:
            detail, status = step.run(), "ok"
        except Skip as exc:
            detail, status = str(exc), "skipped"
        except MissingDependency as exc:  # an extra not installed is a reason to skip, not a failure
            detail, status = str(exc), "skipped"
        except Exception as exc:  # the tour reports failures; it does not stop at one
            detail, status = f"{type(exc).__name__}: {exc}", "FAILED"
        outcomes.append(Outcome(step, status, detail, time.perf_counter() - t0))
    return outcomes
