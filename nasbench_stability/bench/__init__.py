"""NB201 ground truth: build the compact table once, then look cells up fast.

``Benchmark.load()`` opens the table; ``build.build_and_write`` (``nbs bench build``) creates it from
the offline reference files and/or the official NAS-Bench-201 / NATS-Bench files. Every metric
column carries a :class:`ColumnSpec` saying whether it is exact and where it came from.
"""

from .columns import ColumnSpec
from .table import Benchmark

__all__ = ["Benchmark", "ColumnSpec"]
