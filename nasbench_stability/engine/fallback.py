"""What a run does when its packed or CUDA-graphed step fails on a real device, instead of dying.

A first GPU can refuse what a CPU never tries: a CUDA-graph capture, an op under ``vmap`` that has no
batched form, or the memory for K packed seeds. Those three kinds of failure, and only those, fall back:

- a graph capture: the same seeds go on with eager steps;
- out of memory: a pack of K goes on as two packs of about K/2 (a seed alone runs solo), until one fits;
  a solo run that was replaying graphs goes on eagerly (the graphs' memory pool is freed);
- an op unsupported under vmap: every seed of the pack goes on solo.

Anything else (a bug, a non-finite loss, an OOM of a solo eager step) surfaces as before. Each fallback
warns once, in one line naming what failed; the records say which path ran (``exec_path``,
``pack_size``).

A failure mid-epoch leaves parameters and optimizer states partly updated, so the failed epoch starts
again from the state a resume would start from (:meth:`SeedSearch.rewind`: the seed's last checkpoint,
or a fresh build before its first epoch), and each group of seeds is rewound just before it runs: the
run then writes exactly the records of a run stopped before that epoch and resumed on the fallback path.
"""

from __future__ import annotations

import gc
import math
import warnings
from dataclasses import dataclass

import torch

from ..errors import NbsError
from .graphs import GraphCaptureError
from .memory import OutOfMemoryError, error_summary, is_out_of_memory

#: kinds of failure that fall back (:func:`failure_of`)
GRAPH, MEMORY, VMAP = "graph", "memory", "vmap"
# what torch says when an op has no batched form under torch.func.vmap (the step's own bugs say otherwise)
_VMAP_TEXT = ("vmap", "batching rule", "batchedtensor", "functorch")


class FallbackWarning(RuntimeWarning):
    """A packed or graphed step failed and the run went on another way (one line)."""


@dataclass(frozen=True)
class Failure:
    kind: str    # GRAPH | MEMORY | VMAP
    what: str    # the failure in a few words, for the warning


def failure_of(err: BaseException, *, packed: bool, graphs: bool) -> Failure | None:
    """The kind of ``err`` if it falls back (see the module's docstring), else None: the caller re-raises.
    ``packed``: the step was a pack's; ``graphs``: it replayed CUDA graphs."""
    if isinstance(err, GraphCaptureError):
        return Failure(GRAPH, error_summary(err)) if graphs else None   # eager steps have no graph to give up
    if isinstance(err, OutOfMemoryError) or is_out_of_memory(err):
        if not (packed or graphs):
            return None   # nothing smaller to go on with: the one-line OutOfMemoryError says which sizes to cut
        # ours wraps the allocator's error: its words say what the device lacked
        inner = err.__context__ if isinstance(err, OutOfMemoryError) and err.__context__ is not None else err
        return Failure(MEMORY, f"out of memory ({error_summary(inner)})")
    if packed and not isinstance(err, NbsError) and _unsupported_under_vmap(err):
        return Failure(VMAP, f"an op unsupported under vmap ({error_summary(err)})")
    return None


def _unsupported_under_vmap(err: BaseException) -> bool:
    if isinstance(err, NotImplementedError):
        return True
    return isinstance(err, RuntimeError) and any(t in str(err).lower() for t in _VMAP_TEXT)


def split_pack(seeds: list[int], failure: Failure) -> list[list[int]]:
    """The groups a failed pack of ``seeds`` goes on as, in order (a group of one runs solo): the same pack
    after a graph failure, two halves after out of memory, each seed alone after a vmap failure."""
    if failure.kind == GRAPH:
        return [seeds]
    if failure.kind == MEMORY and len(seeds) > 1:
        half = math.ceil(len(seeds) / 2)
        return [seeds[:half], seeds[half:]]
    return [[s] for s in seeds]


def describe(groups: list[list[int]], failure: Failure, names: dict[int, str]) -> str:
    """How the seeds go on, in a few words: "eager steps", "a pack of seeds 0, 1 and seed 2 solo"."""
    if failure.kind == GRAPH:
        return "eager steps"
    if all(len(g) == 1 for g in groups):
        return "each seed solo" if len(groups) > 1 else "the seed solo"
    return " and ".join(f"a pack of seeds {', '.join(names[i] for i in g)}" if len(g) > 1 else
                        f"seed {names[g[0]]} solo" for g in groups)


def warn(who: str, epoch: int, epochs: int, failure: Failure, then: str) -> None:
    """The one line a fallback prints (the CLI prints a warning as one line on stderr)."""
    message = (f"{who}: {failure.what} in epoch {epoch + 1}/{epochs}; restarting the epoch with {then} "
               f"(records say exec_path and pack_size)")
    # a registry of its own: Python shows a warning once per text and place, and every fallback is news
    warnings.warn_explicit(message, FallbackWarning, __file__, 0, module=__name__, registry={})


def release_memory(device: torch.device) -> None:
    """Give back what the failed attempt held (its pack, its graphs' pool) before the next one allocates."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
