"""Benchmarks run by ``interproc bench``: each module measures between real
processes and returns result dicts ``{"transport", "metric", "value", "unit", ...}``."""
