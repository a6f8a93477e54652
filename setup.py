"""Build the interproc._native C extension; everything else is in pyproject.toml."""

from pathlib import Path

from setuptools import Extension, setup
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
            depends=["src/native/native.h", "src/native/ring.h"],
            extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra",
                                "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
            libraries=["pthread"],
        )
    ],
)
