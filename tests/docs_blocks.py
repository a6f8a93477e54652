"""The fenced code blocks of README.md and docs/*.md, as (file, line, info, code).

Shared by tests/test_docs_run.py (runs every ```python block) and the CI's
type check of the same blocks (``python3 tests/docs_blocks.py --extract DIR``
writes each block to DIR/<doc>_L<line>.py for mypy).
"""

from __future__ import annotations

import pathlib
import re
import sys
import textwrap
from typing import NamedTuple

ROOT = pathlib.Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


class Block(NamedTuple):
    path: pathlib.Path
    line: int  # 1-based line of the opening fence
    info: str  # the info string's first word ("" for a bare fence)
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[pathlib.Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(path: pathlib.Path) -> list[Block]:
    """Every fenced block of one Markdown file (CommonMark: the closing fence
    uses the same character, at least as long, with nothing after it)."""
    found = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m.group(1), m.group(2), m.group(3).strip()
        start = i
        body = []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if close and close.group(2)[0] == fence[0] and len(close.group(2)) >= len(fence) \
                    and not close.group(3).strip():
                break
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        word = info.split()[0].lower() if info else ""
        found.append(Block(path, start + 1, word, textwrap.dedent("\n".join(body)) + "\n"))
    return found


def all_blocks() -> list[Block]:
    return [b for path in doc_files() for b in blocks(path)]


def python_blocks() -> list[Block]:
    return [b for b in all_blocks() if b.info in ("python", "py", "python3")]


def extract(directory: pathlib.Path) -> list[pathlib.Path]:
    """Write each python block to its own module, named after its file and line."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for b in python_blocks():
        stem = re.sub(r"\W", "_", str(b.path.relative_to(ROOT).with_suffix("")))
        target = directory / f"{stem}_L{b.line}.py"
        target.write_text(b.code, encoding="utf-8")  # line N here is line L+N of the doc
        written.append(target)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--extract":
        sys.exit("usage: python3 tests/docs_blocks.py --extract DIR")
    for p in extract(pathlib.Path(sys.argv[2])):
        print(p)
