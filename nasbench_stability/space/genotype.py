"""Immutable NB201 cell genotypes: arch strings, NASLib tuples, op-weight argmax, isomorphism keys."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

import numpy as np

from ..errors import ArchStringError, quote
from .ops import (
    EDGE_INDEX,
    EDGES,
    NASLIB_CODE_TO_OP,
    NASLIB_OP_TO_CODE,
    NASLIB_TUPLE_EDGES,
    NUM_EDGES,
    NUM_NODES,
    OP_INDEX,
    OPS,
    PARAM_FREE_OPS,
)

_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d{1,9})$")  # int() of 4,300+ digits would raise


@dataclass(frozen=True)
class Genotype:
    """One NB201 cell: the op on each of the six edges, in arch-string order (0→1, 0→2, 1→2, 0→3, 1→3, 2→3)."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != NUM_EDGES:
            raise ArchStringError(f"a NB201 cell has {NUM_EDGES} edges, got {len(self.ops)} ops")
        for op in self.ops:
            if op not in OP_INDEX:
                raise ArchStringError(f"unknown op {quote(op)}; NB201 ops are {', '.join(OPS)}")

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_str(cls, arch: str) -> "Genotype":
        """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (surrounding whitespace allowed)."""
        if not isinstance(arch, str):
            raise ArchStringError(f"arch string must be a str, got {type(arch).__name__}")
        text = arch.strip()
        nodes = text.split("+")
        if len(nodes) != NUM_NODES - 1:
            raise ArchStringError(f"malformed arch string {quote(arch)}: expected 3 '+'-separated nodes")
        ops: dict[tuple[int, int], str] = {}
        for target, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")) or len(node) < 3:
                raise ArchStringError(f"malformed arch string {quote(arch)}: node {target} must look like |op~i|...|")
            tokens = node[1:-1].split("|")
            if len(tokens) != target:
                raise ArchStringError(f"malformed arch string {quote(arch)}: node {target} needs {target} inputs")
            for token in tokens:
                m = _TOKEN.match(token)
                if m is None:
                    raise ArchStringError(f"malformed arch string {quote(arch)}: bad token {quote(token)}")
                op, source = m.group(1), int(m.group(2))
                if op not in OP_INDEX:
                    raise ArchStringError(f"malformed arch string {quote(arch)}: unknown op {quote(op)}")
                if source >= target or (source, target) in ops:
                    raise ArchStringError(f"malformed arch string {quote(arch)}: bad input {source} for node {target}")
                ops[(source, target)] = op
        return cls(tuple(ops[e] for e in EDGES))

    @classmethod
    def from_naslib(cls, code: str | Sequence[int]) -> "Genotype":
        """Parse a NASLib tuple such as ``(4, 0, 3, 1, 4, 3)`` or its string form."""
        if isinstance(code, str):
            try:
                values = [int(v) for v in code.strip().strip("()[]").split(",") if v.strip()]
            except ValueError as err:
                raise ArchStringError(f"malformed NASLib tuple {quote(code)}") from err
        else:
            values = [int(v) for v in code]
        if len(values) != NUM_EDGES or any(not 0 <= v < len(NASLIB_CODE_TO_OP) for v in values):
            raise ArchStringError(f"malformed NASLib tuple {quote(code)}: need 6 codes in 0..4")
        by_edge = {edge: NASLIB_CODE_TO_OP[v] for edge, v in zip(NASLIB_TUPLE_EDGES, values)}
        return cls(tuple(by_edge[e] for e in EDGES))

    @classmethod
    def from_op_indices(cls, indices: Iterable[int]) -> "Genotype":
        return cls(tuple(OPS[int(i)] for i in indices))

    @classmethod
    def from_weights(cls, weights: np.ndarray | Sequence[Sequence[float]], include_none: bool = True) -> "Genotype":
        """Argmax over each edge's op weights, ``none`` included by default (the NB201 reference).

        Ties go to the first op in ``OPS`` order (numpy argmax), so derivation is deterministic.
        """
        w = np.array(weights, dtype=np.float64)
        if w.shape != (NUM_EDGES, len(OPS)):
            raise ArchStringError(f"op weights must have shape ({NUM_EDGES}, {len(OPS)}), got {w.shape}")
        if not include_none:
            w[:, OP_INDEX["none"]] = -np.inf
        return cls.from_op_indices(w.argmax(axis=1))

    @classmethod
    def parse(cls, text: str) -> "Genotype":
        """Accept an arch string or a NASLib tuple (what users paste into ``nbs query``)."""
        text = text.strip()
        if text.startswith("("):
            return cls.from_naslib(text)
        return cls.from_str(text)

    # ---- views ----------------------------------------------------------------------------------
    def to_str(self) -> str:
        parts, k = [], 0
        for target in range(1, NUM_NODES):
            tokens = []
            for source in range(target):
                tokens.append(f"{self.ops[EDGE_INDEX[(source, target)]]}~{source}")
                k += 1
            parts.append("|" + "|".join(tokens) + "|")
        return "+".join(parts)

    __str__ = to_str

    def to_naslib(self) -> tuple[int, ...]:
        return tuple(NASLIB_OP_TO_CODE[self.ops[EDGE_INDEX[e]]] for e in NASLIB_TUPLE_EDGES)

    def op_indices(self) -> tuple[int, ...]:
        return tuple(OP_INDEX[op] for op in self.ops)

    def one_hot(self) -> np.ndarray:
        m = np.zeros((NUM_EDGES, len(OPS)), dtype=np.float32)
        m[np.arange(NUM_EDGES), self.op_indices()] = 1.0
        return m

    @property
    def param_free_count(self) -> int:
        """How many of the six edges hold a parameter-free op (none, skip_connect, avg_pool_3x3)."""
        return sum(op in PARAM_FREE_OPS for op in self.ops)

    @cached_property
    def canonical_key(self) -> str:
        """NB201's isomorphism key (its ``to_unique_str(consider_zero=True)`` rule; 6,466 classes).

        Node 0 is ``0``. An edge contributes ``#`` (zero) for ``none`` or a zero input, the input's
        own string for ``skip_connect``, and ``(input)@op`` otherwise; a node joins its sorted
        contributions with ``+``. Sorting makes the key independent of edge order, so cells that
        differ only by a permutation of equivalent paths share a key. Zero terms are counted, as in
        NB201, so the partition (and the string itself) equals the benchmark's ``UniqueString``.
        """
        nodes = ["0"]
        for target in range(1, NUM_NODES):
            parts = []
            for source in range(target):
                op = self.ops[EDGE_INDEX[(source, target)]]
                src = nodes[source]
                if op == "none" or src == "#":
                    parts.append("#")
                elif op == "skip_connect":
                    parts.append(src)
                else:
                    parts.append(f"({src})@{op}")
            nodes.append("+".join(sorted(parts)))
        return nodes[-1]

def canonical_key(arch: str | Genotype) -> str:
    """The isomorphism key of an arch string or genotype."""
    g = arch if isinstance(arch, Genotype) else Genotype.from_str(arch)
    return g.canonical_key
