"""Build the interproc._native C extension; everything else is in pyproject.toml."""

from pathlib import Path

import setuptools
from setuptools import Extension, setup

# pyproject.toml uses the PEP 639 licence fields; an older setuptools (run
# directly, as in `python setup.py build_ext --inplace`) fails on them with a
# schema dump that does not say this.  pip's isolated builds fetch a new one.
if int(setuptools.__version__.split(".")[0]) < 77:
    raise SystemExit(f"interproc needs setuptools >= 77 to build (this is {setuptools.__version__}): "
                     "pip install -U 'setuptools>=77'")
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, PlatformError

native_sources = sorted(str(p) for p in Path("src/native").glob("*.c"))

NO_COMPILER = """\
building interproc's C core (interproc._native) failed:
    {error}
It needs a C compiler and the Python headers; if they are missing, install
them and build again, for example:
    Debian / Ubuntu:  apt-get install gcc python3-dev
    Fedora / RHEL:    dnf install gcc python3-devel
    Alpine:           apk add gcc musl-dev python3-dev
(interproc runs on Linux only.)"""


class BuildNative(build_ext):
    """Turn a missing compiler or missing headers into a message that says what to install."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except (CCompilerError, ExecError, PlatformError) as exc:
            raise CompileError(NO_COMPILER.format(error=exc)) from exc


setup(
    cmdclass={"build_ext": BuildNative},
    ext_modules=[
        Extension(
            "interproc._native",
            sources=native_sources,
            depends=["src/native/native.h", "src/native/ring.h", "src/native/pubsub.h"],
            extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                                "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            libraries=["pthread"],
        )
    ],
)
