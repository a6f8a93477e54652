"""Build the interproc._native C extension; everything else is in pyproject.toml."""

from pathlib import Path

from setuptools import Extension, setup

native_sources = sorted(str(p) for p in Path("src/native").glob("*.c"))

setup(
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
