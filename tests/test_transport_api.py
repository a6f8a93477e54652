"""The public transport modules re-export exactly what their __all__ lists."""

from __future__ import annotations

import importlib
import types

import pytest


@pytest.mark.parametrize("module", ["interproc.pipes", "interproc.sockets", "interproc.aio"])
def test_all_is_complete_and_sorted(module):
    mod = importlib.import_module(module)
    public = {n for n, v in vars(mod).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    public -= {"annotations"}
    assert set(mod.__all__) == public
    assert list(mod.__all__) == sorted(mod.__all__)


def test_transports_do_not_import_upwards():
    """Transports sit below the protocols and the CLI: none of their modules imports those."""
    import ast
    import pathlib

    src = pathlib.Path(importlib.import_module("interproc").__file__).parent
    files = ["_framing.py", "_handshake.py", "_stream.py", "_sockets.py", "_pipes.py", "_namedpipe.py",
             "pipes.py", "sockets.py", *[f"aio/{p.name}" for p in (src / "aio").glob("*.py")]]
    forbidden = ("rpc", "dde", "objects", "messages", "cli")
    for name in files:
        tree = ast.parse((src / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                assert not any(p in forbidden for p in parts), f"{name} imports {node.module}"
