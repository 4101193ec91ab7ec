"""nbs — NAS-Bench-201 benchmarking and stability analysis of differentiable architecture search.

The package mirrors the pipeline: ``space`` (genotypes, supernet) → ``methods`` (how α and w are
updated) → ``engine`` (runs, seeds, records, resume) → ``bench`` (ground-truth lookup) →
``analysis`` → ``plots`` / report → ``cli``.
"""

__version__ = "0.1.0"
