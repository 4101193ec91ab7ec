"""One run: a resolved config in, a run directory out.

``<out>/<method>-<dataset>-seed<k>/`` holds ``config.json`` (the resolved RunConfig), ``status.json``,
``checkpoint.pt`` (after every epoch) and ``records/epoch-NNNN.parquet``. Re-running the same
config resumes from the checkpoint; a finished run is not re-run; a different config in the same
directory is refused, and nothing already written is overwritten.

A damaged ``status.json`` is rewritten from the checkpoint; a damaged record of an epoch already done
cannot be (the checkpoint holds only the state after the last epoch), so it stops the run with one
line naming the file. A finished run is reported as such without taking the run's lock, so that
runs on read-only storage can still be re-run as a no-op.
"""

from __future__ import annotations

import json
import itertools
import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..bench.sources import one_line
from ..bench.table import Benchmark
from ..data.pipeline import BatchStream
from ..data.search import SearchData, search_data
from ..destinations import check_folder_path, ensure_folder, writing
from ..errors import ConfigError, DamagedFileError, NbsError
from ..methods.base import SearchContext, SearchMethod, StepStats
from ..methods.registry import get_method
from ..space.ops import EDGES, OPS
from ..space.supernet import NetworkShape
from .atomic import write_text_atomic
from .budget import PAUSED, EpochBudget, TimeBudget, clock, left_message, timed, unstarted
from .checkpoint import load_checkpoint, restore_state, save_checkpoint
from .config import RunConfig
from .epoch_log import EpochLog, NoEpochLog, check_log_destination, open_epoch_log
from .fallback import failure_of, release_memory, warn
from .graphs import BatchScorer, graphed_step, step_path
from .hessian import HessianSpectrum, arch_hessian_spectrum, arch_parameter_count
from .memory import fits_in_memory
from .records import RECORDS_DIR, damaged_records, drop_records_after, record_path, write_record
from .run_lock import LOCK_FILE, hold_run_lock
from .status import STATES, STATUS_FILE, TERMINAL, read_status, write_status

CONFIG_FILE, CHECKPOINT_FILE = "config.json", "checkpoint.pt"


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    state: str             # "finished" | "diverged" | "paused" (by --time-budget) | "already-finished"
    epochs_done: int
    final_genotype: str | None
    message: str = ""
    #: what epochs_done counts, as the CLI says it ("epochs"; a table search's "record checkpoints, N queries")
    unit: str = "epochs"


# ---------------------------------------------------------------------------------------------
# run directory bookkeeping
# ---------------------------------------------------------------------------------------------
def run_dir_for(out: Path, config: RunConfig) -> Path:
    return Path(out) / config.run_name


def has_ended(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` has ended (finished or diverged, with its config): it is answered
    from its folder, never run again, so nothing it would write needs checking."""
    status, problem = read_status(run_dir)
    return not problem and status.get("state") in TERMINAL and (Path(run_dir) / CONFIG_FILE).exists()


def _write_status(run_dir: Path, state: str, epochs_done: int, message: str = "") -> None:
    with writing(run_dir / STATUS_FILE, "run status"):
        write_status(run_dir, state, epochs_done, message)


def _check_records(run_dir: Path, upto: int) -> None:
    """The records of epochs 1..``upto`` must be intact: the checkpoint holds only the state after
    the last epoch, so a lost record can be recomputed only by re-running from scratch."""
    damaged = damaged_records(run_dir, upto)
    if not damaged:
        return
    path, problem = damaged[0]
    more = f" (and {len(damaged) - 1} more record file(s))" if len(damaged) > 1 else ""
    raise DamagedFileError(
        f"record {path} is {problem if problem == 'missing' else f'damaged ({problem})'}{more}; a done epoch's "
        f"record cannot be re-derived from the checkpoint, only by re-running from scratch: re-run into another "
        f"--out (runs are deterministic) or move {run_dir} away")


def _config_needs_writing(run_dir: Path, config: RunConfig) -> bool:
    """Whether ``config.json`` is to be (re)written; ConfigError when the directory holds a started
    run of another config (its records and checkpoint are never mixed with another config's)."""
    path = run_dir / CONFIG_FILE
    if not path.exists() or _never_started(run_dir):
        # a config alone (a run that failed before its first epoch) holds no results: take the new one
        return True
    try:
        saved = RunConfig.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, AttributeError, KeyError, NbsError) as err:
        raise ConfigError(f"{path} is not a readable nbs config ({err}); refusing to touch this run") from None
    if saved.config_hash != config.config_hash:
        old, new = _flat(saved.to_dict()), _flat(config.to_dict())
        diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        raise ConfigError(f"{run_dir} holds a run with a different config (differs in: {', '.join(diff)}); "
                          f"use another --out or the same settings to resume")
    return False


def check_resumable(run_dir: Path, config: RunConfig) -> None:
    """What :meth:`Run.execute` would refuse about ``run_dir`` before any work (a file in its place, a
    started run of another config), without writing: a caller that writes something of its own first (a
    reproduction's manifest) asks this, so that a refused run leaves that unwritten too."""
    check_folder_path(run_dir, "run directory")
    if run_dir.is_dir():
        _config_needs_writing(run_dir, config)


def _has_results(run_dir: Path) -> bool:
    """A checkpoint or anything under records/: an epoch of this run got (at least partly) written."""
    records = run_dir / RECORDS_DIR
    return (run_dir / CHECKPOINT_FILE).exists() or (records.is_dir() and any(records.iterdir()))


def _never_started(run_dir: Path) -> bool:
    """No results, and a status (if any) that says neither running nor ended."""
    if _has_results(run_dir):
        return False
    status, problem = read_status(run_dir)
    if problem:
        return False  # an unreadable status is not evidence of nothing: leave the directory alone
    return status.get("state") not in STATES


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    """Config dict with method options as top-level keys, so a mismatch names the option."""
    out = {k: v for k, v in d.items() if k != "method_options"}
    out.update(d.get("method_options", {}))
    return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# per-epoch accumulation (device tensors; one host sync per epoch)
# ---------------------------------------------------------------------------------------------
class EpochAccumulator:
    def __init__(self) -> None:
        self.loss = self.correct = 0
        self.count = 0
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def _add(self, name: str, value: torch.Tensor | None) -> None:
        if value is None:
            return
        value = value.detach().float()
        self.sums[name] = self.sums[name] + value if name in self.sums else value.clone()
        self.counts[name] = self.counts.get(name, 0) + 1

    def add(self, stats: StepStats) -> None:
        self.loss = self.loss + stats.loss_sum.detach().float()
        self.correct = self.correct + stats.correct.detach()
        self.count += stats.count
        self._add("op_grad", stats.op_grad)
        self._add("gc_inner", stats.gc_inner)
        self._add("gc_cos", stats.gc_cos)
        for k, v in stats.extra.items():
            self._add(k, v)

    def means(self) -> dict[str, np.ndarray]:
        return {k: (v / self.counts[k]).cpu().numpy() for k, v in self.sums.items()}

    def seed(self, k: int) -> "EpochAccumulator":
        """Seed ``k``'s share of a packed epoch's sums (each has a leading seed axis)."""
        out = EpochAccumulator()
        out.loss, out.correct, out.count = self.loss[k], self.correct[k], self.count
        out.sums = {name: v[k] for name, v in self.sums.items()}
        out.counts = dict(self.counts)
        return out


def _evaluate(method: SearchMethod, stream: BatchStream, epoch: int, cuda_graphs: bool = True) -> tuple[float, float]:
    """Supernet loss/accuracy on the valid half under the current architecture (no gradients)."""
    loss, acc = evaluate_seeds(method, [stream], epoch, cuda_graphs)
    return loss[0], acc[0]


def evaluate_seeds(method: SearchMethod, streams: list[BatchStream], epoch: int,
                   cuda_graphs: bool = True) -> tuple[list[float], list[float]]:
    """Per-seed supernet loss and accuracy on each seed's own valid batches: a packed method gets them
    as (K, B, ...) stacks; a solo method has one stream."""
    stack = method.pack_size is not None
    scorer = BatchScorer(method, cuda_graphs)
    method.eval()
    loss = correct = 0
    n = 0
    with torch.no_grad():
        for batches in zip(*(s.epoch(epoch) for s in streams)):
            if stack:
                x, y = torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
            else:
                (x, y), = batches
            batch_loss, batch_correct = scorer(x, y)
            loss, correct = loss + batch_loss, correct + batch_correct
            n += y.shape[-1]
    method.train()
    loss_t, correct_t = torch.as_tensor(loss).reshape(-1).tolist(), torch.as_tensor(correct).reshape(-1).tolist()
    return [float(v) / max(n, 1) for v in loss_t], [100.0 * float(c) / max(n, 1) for c in correct_t]


def _cycle(stream: BatchStream, epoch: int) -> Iterator:
    """Batches of ``epoch``; if a step needs more than the stream has, continue with fresh passes."""
    k = 0
    while True:
        yield from stream.epoch(epoch * 1000 + k if k else epoch)
        k += 1


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def steps_per_epoch(cfg: RunConfig, data: SearchData) -> int:
    """Optimisation steps in one epoch: full batches of the train half (what the lr schedule spans)."""
    return len(BatchStream(data.train, cfg.batch_size, cfg.seed, "train", augment=False, mean=data.mean,
                           std=data.std))


def build_method(cfg: RunConfig, num_classes: int, steps_per_epoch: int) -> SearchMethod:
    """The config's method, freshly initialised from the config's seed."""
    ctx = SearchContext(
        shape=NetworkShape(cfg.channels, cfg.cells_per_stage, num_classes),
        device=cfg.torch_device(), epochs=cfg.epochs, steps_per_epoch=steps_per_epoch, seed=cfg.seed,
        amp_dtype=torch.bfloat16 if cfg.amp else None, channels_last=cfg.channels_last)
    seed_everything(cfg.seed)
    try:
        return get_method(cfg.method).factory(cfg.options(), ctx)
    except ValueError as err:
        if isinstance(err, NbsError):
            raise
        # each option is inside its range, but torch refuses the combination (e.g. Nesterov at momentum 0)
        raise ConfigError(f"{cfg.method}: these options do not go together ({one_line(err)}); "
                          f"see `nbs methods --show {cfg.method}`") from None


class Run:
    """Executes one RunConfig into its run directory. Construct, then call :meth:`execute`."""

    def __init__(self, config: RunConfig, out: Path, *, benchmark: Benchmark, data_root: Path | None = None,
                 progress: bool = True, log: Callable[[str], None] = print, cuda_graphs: bool = True,
                 epoch_log: str = "none", budget: TimeBudget | None = None) -> None:
        self.config, self.benchmark = config, benchmark
        self.cuda_graphs = cuda_graphs   # an execution choice, not part of the config: results are the same
        self.epoch_log = epoch_log       # so is where epochs are logged besides the records (engine/epoch_log.py)
        self.budget = budget             # --time-budget: stop between epochs (engine/budget.py); None: no limit
        self.epoch_logger: EpochLog = NoEpochLog()
        self.run_dir = run_dir_for(out, config)
        self.data_root, self.progress, self.log = data_root, progress, log

    def execute(self) -> RunResult:
        if (spent := self.unstarted()) is not None:
            return spent
        with self.claim() as answer:
            return answer if answer is not None else self._search()

    def unstarted(self) -> RunResult | None:
        """A paused RunResult, with nothing written, when the time budget is spent before this run starts
        (an ended run is answered as ever, by :meth:`claim`); else None."""
        if self.budget is None or not self.budget.spent():
            return None
        state, done, message = unstarted(self.run_dir, self.config.epochs)
        return None if state != PAUSED else RunResult(self.run_dir, PAUSED, done, None, message)

    @contextmanager
    def claim(self) -> Iterator[RunResult | None]:
        """Yields the RunResult of a run that needs no search (ended, or found finished on repair),
        else None with the run's lock held for the caller's search (:meth:`_search`, or a pack's).
        If the body fails before the run's first epoch is written, what this run wrote is undone."""
        cfg = self.config
        created = not self.run_dir.exists()
        ensure_folder(self.run_dir, "run directory")
        if has_ended(self.run_dir):
            _config_needs_writing(self.run_dir, cfg)  # an ended run's config exists: this only reads it
            yield self._already(read_status(self.run_dir)[0])   # (no lock: read-only storage still answers)
            return
        # before the run writes anything, its lock file included (a run directory that was just made is
        # empty: nothing there can be in the way)
        check_log_destination(self.epoch_log, self.run_dir)
        with hold_run_lock(self.run_dir):
            self._wrote_config = False
            try:
                self._write_config = _config_needs_writing(self.run_dir, cfg)
                status, problem = read_status(self.run_dir)  # again: another process may have moved it on
                answer = None
                if problem:
                    answer = self._repair_status(problem)
                elif status.get("state") in TERMINAL:
                    answer = self._already(status)
                yield answer
            except BaseException:
                self._undo_unstarted(created)
                raise
            finally:
                self.epoch_logger.close()

    def _undo_unstarted(self, created: bool) -> None:
        """After a failure before any epoch was written: remove what this call wrote (its config and
        status, and the directory if it made it), so that no empty run is left to be found or refused."""
        if _has_results(self.run_dir):
            return
        if self._wrote_config:
            for name in (STATUS_FILE, CONFIG_FILE):
                (self.run_dir / name).unlink(missing_ok=True)
        if created:
            try:
                (self.run_dir / LOCK_FILE).unlink(missing_ok=True)
                self.run_dir.rmdir()
            except OSError:
                pass  # something else is in there: leave it

    def _already(self, status: dict[str, Any]) -> RunResult:
        state, done = status["state"], status["epochs_done"]
        _check_records(self.run_dir, done)
        return RunResult(self.run_dir, "already-" + state, done, None, f"{self.run_dir} already {state}"
                         + (f" at epoch {done}" if state == "diverged" else "") + "; not re-run")

    def _repair_status(self, problem: str) -> RunResult | None:
        """Rewrite a damaged status.json from the checkpoint (the authority on epochs done); a
        RunResult if that shows the run finished, else None (the search resumes)."""
        cfg, status_path, ckpt = self.config, self.run_dir / STATUS_FILE, self.run_dir / CHECKPOINT_FILE
        if not ckpt.exists():
            _write_status(self.run_dir, "running", 0)
            self.log(f"repaired {status_path} ({problem}): no checkpoint yet, so the run starts from its first epoch")
            return None
        done = load_checkpoint(ckpt, config_hash=cfg.config_hash, device=torch.device("cpu"))["epochs_done"]
        _check_records(self.run_dir, done)
        state = "finished" if done >= cfg.epochs else "running"
        _write_status(self.run_dir, state, done)
        note = f"repaired {status_path} ({problem}): rewritten from {CHECKPOINT_FILE} as {state} after epoch {done}"
        if state == "finished":
            return RunResult(self.run_dir, "already-finished", done, None, note)
        self.log(note)
        return None

    def write_config(self) -> None:
        """Write ``config.json`` under the claim, unless the directory already holds this config."""
        if self._write_config:
            path = self.run_dir / CONFIG_FILE
            with writing(path, "run config"):
                write_text_atomic(path, json.dumps(self.config.to_dict(), indent=2, default=str))
            self._wrote_config = True

    def _streams(self, data: SearchData, method: SearchMethod) -> dict[str, BatchStream]:
        cfg = self.config
        split = {"train": data.train, "train2": data.train, "valid": data.valid}
        return {name: BatchStream(split[name], cfg.batch_size, cfg.seed, name, augment=True,
                                  mean=data.mean, std=data.std) for name in method.streams}

    def prepare(self, shared_data: dict | None = None) -> "SeedSearch":
        """Load the data, build the method, write the config and restore the checkpoint (under the
        claim): everything a search of this run needs before its first epoch. ``shared_data``: the
        splits the other seeds of a pack loaded (:func:`search_data`'s ``shared``), so that identical
        ones are one copy on the device."""
        cfg, run_dir = self.config, self.run_dir
        device = cfg.torch_device()
        # everything that can refuse the sizes comes before the first write to the run directory
        with fits_in_memory(cfg, "loading the data and building the supernet"):
            data = search_data(cfg.dataset, self.data_root, cfg.seed, subset=cfg.data_subset, device=device,
                               split_policy=cfg.split_policy, include_test=False, shared=shared_data)
            steps = steps_per_epoch(cfg, data)
            method = build_method(cfg, data.num_classes, steps)
            self._provenance = {"data_split": data.split_source, "data_source": data.data_source}
            streams = self._streams(data, method)
            eval_stream = BatchStream(data.valid, cfg.batch_size, cfg.seed, "eval", augment=False, mean=data.mean,
                                      std=data.std, drop_last=False, shuffle=False, limit_batches=cfg.eval_batches)
            # candidate cells are scored on shuffled valid batches, without augmentation unless the method asks
            # (xautodl's valid_loader, whose batches are the config's test_batch_size: a method's
            # select_batch_size, at most the half)
            select_size = min(method.select_batch_size or cfg.batch_size, len(data.valid))
            select_stream = (BatchStream(data.valid, select_size, cfg.seed, "select", augment=method.select_augment,
                                         mean=data.mean, std=data.std) if method.select_batches else None)
            if cfg.hessian_every and not arch_parameter_count(method):
                raise ConfigError(f"{cfg.method} has no architecture parameters: hessian_every does not apply")
            # the same valid batches at every measurement, so the eigenvalue curves are not batch noise
            hessian_batches = ([b for b, _ in zip(eval_stream.epoch(0), range(cfg.hessian_batches))]
                               if cfg.hessian_every or method.needs_hessian else [])
        self.write_config()

        start_epoch, wall = 0, 0.0
        ckpt_path = run_dir / CHECKPOINT_FILE
        if ckpt_path.exists():
            payload = load_checkpoint(ckpt_path, config_hash=cfg.config_hash, device=device)
            restore_state(method, payload, ckpt_path, rng=True)
            start_epoch, wall = payload["epochs_done"], payload["wall_seconds"]
            _check_records(run_dir, start_epoch)
            with writing(run_dir / "records", "run records"):
                drop_records_after(run_dir, start_epoch)
            self.log(f"{cfg.run_name}: resuming after epoch {start_epoch}/{cfg.epochs}")
        _write_status(run_dir, "running", start_epoch)
        self.epoch_logger = open_epoch_log(self.epoch_log, run_dir, start_epoch)
        return SeedSearch(self, method, streams, eval_stream, hessian_batches, steps, start_epoch, wall,
                          select_stream=select_stream)

    def _search(self) -> RunResult:
        return self.search_from(self.prepare())

    def search_from(self, search: "SeedSearch") -> RunResult:
        """The epochs of ``search`` alone: a prepared run, or a seed of a pack that fell back to solo."""
        cfg = self.config
        if (stopped := search.stopped_early(search.start_epoch)) is not None:   # its status had to be repaired
            return stopped
        budget = EpochBudget(self.budget, cfg) if self.budget is not None else None
        for epoch in range(search.start_epoch, cfg.epochs):
            if budget is not None and (paused := search.pause_for(budget, epoch)) is not None:
                return paused
            started, t0 = clock(), time.perf_counter()
            while (done := self._epoch(search, epoch)) is None:   # fell back to eager steps: the epoch again
                started, t0 = clock(), time.perf_counter()
            acc, train_loss, diverged, valid_loss, valid_acc, spectrum, hessian_s, path = done
            if cfg.torch_device().type == "cuda":
                torch.cuda.synchronize()
            ended = search.end_epoch(epoch, acc, train_loss, valid_loss, valid_acc, time.perf_counter() - t0,
                                     spectrum, diverged, exec_path=path)
            if ended is not None:
                return ended
            if budget is not None:   # the whole epoch, its record and checkpoint included
                budget.took(clock() - started, hessian_s if spectrum is not None else 0.0)
        return search.finished()

    def _epoch(self, search: "SeedSearch", epoch: int) -> tuple | None:
        """One epoch's steps, selection, evaluation and Hessian: (accumulator, train loss, diverged, valid
        loss, valid accuracy, spectrum, its seconds, exec path); None where a graphed step failed in a way
        that goes on eagerly (engine/fallback.py), with the search rewound to the epoch's start."""
        cfg, method, path = self.config, search.method, "eager"
        try:
            with fits_in_memory(cfg, f"training epoch {epoch + 1}"):
                iters = {name: _cycle(s, epoch) for name, s in search.streams.items()}
                step_fn = graphed_step(method, self.cuda_graphs)
                path = step_path(step_fn, method)
                acc = train_epoch(method, step_fn, lambda: {n: next(it) for n, it in iters.items()}, epoch,
                                  search.steps, self._bar_label(epoch) if self.progress else None)
                train_loss = float(acc.loss) / max(acc.count, 1)
                diverged = not math.isfinite(train_loss)
                search.select(epoch, diverged)   # first: SETN and ENAS evaluate the cell they pick
                valid_loss, valid_acc = ((math.nan, math.nan) if diverged else
                                         _evaluate(method, search.eval_stream, epoch, self.cuda_graphs))
                spectrum, hessian_s = timed(lambda: search.spectrum(epoch, diverged))
            return acc, train_loss, diverged, valid_loss, valid_acc, spectrum, hessian_s, path
        except Exception as err:
            failure = failure_of(err, packed=False, graphs=path == "graph")
            if failure is None:
                raise
        # out of the except block: its traceback no longer holds the failed attempt's graphs and tensors
        method = step_fn = None
        warn(cfg.run_name, epoch, cfg.epochs, failure, "eager steps")
        self.cuda_graphs = False
        release_memory(cfg.torch_device())
        search.rewind()
        return None

    def _bar_label(self, epoch: int) -> str:
        return f"{self.config.run_name} ep {epoch + 1}/{self.config.epochs}"

    def _record(self, method: SearchMethod, epoch: int, acc: EpochAccumulator, train_loss: float,
                valid_loss: float, valid_acc: float, seconds: float, wall: float,
                spectrum: HessianSpectrum | None, diverged: bool, pack_size: int = 1,
                exec_path: str = "eager") -> dict[str, Any]:
        cfg = self.config
        weights = method.op_weights()
        genotype = method.derive()
        bench = self.benchmark.lookup_one(genotype)
        means = acc.means()
        nan = np.full((len(EDGES), len(OPS)), np.nan)
        gc_inner, gc_cos = means.get("gc_inner", nan), means.get("gc_cos", nan)
        record: dict[str, Any] = {
            "run": cfg.run_name, "method": cfg.method, "dataset": cfg.dataset, "seed": cfg.seed,
            "preset": cfg.preset, "epoch": epoch + 1, "epochs": cfg.epochs,
            "genotype": genotype.to_str(),
            "canonical_key": genotype.canonical_key, "param_free_count": genotype.param_free_count,
            "bench_index": int(bench["index"]),
            "op_weights": np.asarray(weights, dtype=np.float64),
            "train_loss": train_loss, "train_acc": 100.0 * float(acc.correct) / max(acc.count, 1),
            "valid_loss": valid_loss, "valid_acc": valid_acc,
            **method.learning_rates(),
            # a packed epoch's wall time is shared by its seeds: each records its share (pack_size says)
            "epoch_seconds": seconds, "wall_seconds": wall, "pack_size": pack_size,
            # how the steps ran ("graph": replayed CUDA graphs; "eager"): a fallback changes it mid-run
            "exec_path": exec_path,
            "op_grad": means.get("op_grad", nan),
            "gc_inner": gc_inner, "gc_cos": gc_cos,
            "gc_mean": float(np.nanmean(gc_inner)) if np.isfinite(gc_inner).any() else math.nan,
            "gc_cos_mean": float(np.nanmean(gc_cos)) if np.isfinite(gc_cos).any() else math.nan,
            **_hessian_columns(spectrum, arch_parameter_count(method)), "diverged": diverged,
            # BN mode of the searchable cells: the eval-mode valid accuracy above depends on it
            "track_running_stats": bool(getattr(method.options, "track_running_stats", False)),
            **self._provenance,
        }
        for spec in self.benchmark.accuracy_columns:
            record[f"bench_{spec.name}"] = float(bench.get(spec.name, math.nan))
        for k, v in means.items():
            if k not in ("op_grad", "gc_inner", "gc_cos"):
                record[k] = v.item() if v.ndim == 0 else v   # a scalar step statistic is a float column
        record.update(method.extra_records())
        return record


def train_epoch(method: SearchMethod, step_fn: Callable, next_batches: Callable[[], dict], epoch: int, steps: int,
                bar_label: str | None) -> EpochAccumulator:
    """One epoch of ``steps`` steps of ``method`` (solo or packed) through ``step_fn`` (its step, or a
    CUDA-graphed one), batches from ``next_batches()``."""
    gc_every = getattr(method.options, "gc_every", 0)
    method.train()
    method.begin_epoch(epoch)
    acc = EpochAccumulator()
    bar: Any = range(method.epoch_steps(epoch, steps))
    if bar_label is not None:
        from tqdm.auto import tqdm
        bar = tqdm(bar, desc=bar_label, leave=False, unit="step")
    for step in bar:
        measure = gc_every > 0 and step % gc_every == 0
        acc.add(step_fn(next_batches(), epoch, step, measure))
    return acc


@dataclass
class SeedSearch:
    """One run's search state between epochs (a solo run, or one seed of a pack)."""

    run: Run
    method: SearchMethod
    streams: dict[str, BatchStream]
    eval_stream: BatchStream
    hessian_batches: list
    steps: int
    start_epoch: int
    wall: float
    genotype: str | None = None
    select_stream: BatchStream | None = None

    def select(self, epoch: int, diverged: bool) -> None:
        """The method's end-of-epoch selection of its derived cell (:meth:`SearchMethod.select`)."""
        if self.select_stream is not None and not diverged:
            batches = itertools.islice(_cycle(self.select_stream, epoch), self.method.select_batches)
            self.method.select(batches, epoch)
            self.method.train()

    def hessian_due(self, epoch: int) -> bool:
        """Whether ``epoch`` (0-based) measures the α-Hessian: every ``hessian_every``-th, and the method's own."""
        cfg = self.run.config
        asked = cfg.hessian_every and (epoch + 1) % cfg.hessian_every == 0
        return bool(asked) or epoch in type(self.method).own_hessian_epochs(self.method.options, cfg.epochs)

    def spectrum(self, epoch: int, diverged: bool) -> HessianSpectrum | None:
        if diverged or not self.hessian_due(epoch):
            return None
        spectrum = arch_hessian_spectrum(self.method, self.hessian_batches)
        self.method.observe_hessian(epoch, spectrum)
        return spectrum

    def end_epoch(self, epoch: int, acc: EpochAccumulator, train_loss: float, valid_loss: float, valid_acc: float,
                  seconds: float, spectrum: HessianSpectrum | None, diverged: bool,
                  pack_size: int = 1, exec_path: str = "eager") -> RunResult | None:
        """Write the epoch's record, then the checkpoint and status; a RunResult if the run diverged."""
        run, cfg, method = self.run, self.run.config, self.method
        run_dir = run.run_dir
        self.wall += seconds
        record = run._record(method, epoch, acc, train_loss, valid_loss, valid_acc, seconds, self.wall, spectrum,
                             diverged, pack_size, exec_path)
        self.genotype = record["genotype"]
        with writing(record_path(run_dir, epoch + 1), "record"):
            write_record(run_dir, epoch + 1, record)
        run.epoch_logger.epoch(record)
        if diverged:
            msg = f"{cfg.run_name} diverged at epoch {epoch + 1} (non-finite training loss); records kept"
            _write_status(run_dir, "diverged", epoch + 1, msg)
            return RunResult(run_dir, "diverged", epoch + 1, self.genotype, msg)
        ckpt_path = run_dir / CHECKPOINT_FILE
        with writing(ckpt_path, "checkpoint"):
            save_checkpoint(ckpt_path, config_hash=cfg.config_hash, epochs_done=epoch + 1,
                            method_state=method.checkpoint_state(), wall_seconds=self.wall)
        _write_status(run_dir, "running", epoch + 1)
        run.log(f"{cfg.run_name} epoch {epoch + 1}/{cfg.epochs}: {self.genotype} "
                f"test={record.get('bench_cifar10_test_200', math.nan):.2f} train_acc={record['train_acc']:.1f}")
        return self.stopped_early(epoch + 1) if epoch + 1 < cfg.epochs else None

    def rewind(self) -> None:
        """Back to where a resume of this run would start: its last checkpoint, or a fresh build before
        its first epoch. A step that failed mid-epoch (engine/fallback.py) left parameters and optimizer
        states partly updated; from here the run writes what a run resumed on the fallback path writes."""
        run, cfg = self.run, self.run.config
        with fits_in_memory(cfg, "building the supernet again"):
            self.method = build_method(cfg, self.method.ctx.shape.num_classes, self.steps)
        self.start_epoch, self.wall = 0, 0.0
        ckpt_path = run.run_dir / CHECKPOINT_FILE
        if ckpt_path.exists():
            payload = load_checkpoint(ckpt_path, config_hash=cfg.config_hash, device=cfg.torch_device())
            restore_state(self.method, payload, ckpt_path, rng=True)
            self.start_epoch, self.wall = payload["epochs_done"], payload["wall_seconds"]

    def stopped_early(self, epochs_done: int) -> RunResult | None:
        """A finished RunResult (and status) after ``epochs_done`` epochs if the method asks to stop there
        (:meth:`SearchMethod.stop_reason`), else None."""
        reason = self.method.stop_reason()
        if reason is None:
            return None
        run = self.run
        genotype = self.genotype or self.method.derive().to_str()
        msg = f"{run.config.run_name} stopped early after epoch {epochs_done}/{run.config.epochs}: {reason}"
        _write_status(run.run_dir, "finished", epochs_done, msg)
        run.log(msg)
        return RunResult(run.run_dir, "finished", epochs_done, genotype, msg)

    def pause_for(self, budget: EpochBudget, epoch: int) -> RunResult | None:
        """Before ``epoch``: a paused RunResult (and status) if it would not finish within ``budget``, else None."""
        fits, why = budget.fits(self.hessian_due(epoch))
        return None if fits else self.paused(epoch, why)

    def paused(self, epochs_done: int, why: str) -> RunResult:
        """Stopped by the time budget after ``epochs_done`` epochs (checkpointed after the last): status
        ``paused``, which the same command resumes."""
        run, cfg = self.run, self.run.config
        message = left_message(epochs_done, cfg.epochs)
        _write_status(run.run_dir, PAUSED, epochs_done, f"stopped by --time-budget: {why}; {message}")
        run.log(f"{cfg.run_name}: stopping after epoch {epochs_done}/{cfg.epochs}: {why}")
        return RunResult(run.run_dir, PAUSED, epochs_done, self.genotype, message)

    def finished(self) -> RunResult:
        cfg = self.run.config
        _write_status(self.run.run_dir, "finished", cfg.epochs)
        return RunResult(self.run.run_dir, "finished", cfg.epochs, self.genotype)


def _hessian_columns(spectrum: HessianSpectrum | None, size: int) -> dict[str, Any]:
    """λ_max, λ_min and the ascending spectrum of ∇²_α L_valid; NaN (a NaN array of the same
    length) in epochs without a measurement, so every epoch's columns have one Parquet type."""
    if spectrum is None:
        return {"hessian_max": math.nan, "hessian_min": math.nan, "hessian_spectrum": np.full(size, np.nan)}
    return {"hessian_max": spectrum.largest, "hessian_min": spectrum.smallest,
            "hessian_spectrum": np.asarray(spectrum.eigenvalues, dtype=np.float64)}
