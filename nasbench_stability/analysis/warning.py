"""Early warning of collapse: which recorded signal predicts that a run will collapse, how many epochs ahead,
and how reliably.

The **event** is the survival analysis' collapse event (:func:`~.survival.collapse_events`: the first epoch at
which :class:`~.collapse.CollapseCriteria` holds, as if that epoch were the run's last), so changing the criteria
changes both analyses alike. Runs that never collapse are **controls**, censored at their last recorded epoch.

An **indicator** is a function of a run's records up to epoch t only (:data:`INDICATORS`; each says its source
and which direction is alarming). Its value at t is computed with causal operations alone (per-row values,
carried forward, trailing windows), so no later epoch can leak into it; ``tests/test_analysis_warning.py``
checks that by perturbing every epoch after t.

Three questions, each a tidy frame of :class:`EarlyWarning`:

(a) **Discrimination, k epochs ahead** (``auc``). A collapsing run with its event at T is scored by the
    indicator at T − k; each control is scored *at the same epoch* T − k, and only if it was still observed at
    T (the survival analysis' risk set: a run censored at C is at risk up to C). Comparing at the same epoch
    keeps signals that merely drift with the epoch (λ_max grows in every run) from looking predictive. The AUC
    is the fraction of such (collapsing, control) pairs ordered the alarming way, ties ½ (for one common event
    epoch this is Mann–Whitney U / (n₁ n₂), which the tests check against scipy). Its interval: percentile
    bootstrap over runs, collapsing and control runs resampled separately (:mod:`.pair_auc`). Against the naive
    baseline, the parameter-free count (``versus_baseline``): each indicator's AUC minus the baseline's on the
    same pairs, with a paired bootstrap, so "does anything beat the count?" has an interval.
(b) **Alarms at a fixed false-alarm rate** (``alarms``, ``leads``). The threshold is set on the controls: at
    most ``false_alarm_rate`` of them ever cross it over their whole observed search. A collapsing run's first
    crossing at least ``min_lead`` epochs before its event is its alarm; lead time = event − alarm; a run with
    no such crossing is missed.
(c) **What an early stop on the alarm returns** (``stops``, ``stop_summary``): the ground truth of the cell
    derived at the first alarm (the final cell if the run never alarms), against the final and the best cell
    of the run; on controls too, where an alarm is a false one. DARTS-ES' claim, measured.

Runs of all methods are pooled: a signal that only tells methods apart (gradient correlation is 1 for every
single-level method, and those rarely collapse) scores as if it warned. :func:`early_warning` never raises for
too few runs: without a collapsing or a control run its ``status`` says "not enough runs".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import ConfigError, NbsError
from ..space.ops import NUM_OPS, OP_INDEX
from .bench_columns import record_column
from .collapse import CollapseCriteria
from .curves import epoch_curves
from .intervals import DEFAULT_RULE
from .matrices import stack
from .pair_auc import (Resampling, RunSignal, aligned, bootstrap_auc, pair_matrix, paired_difference,
                       pairwise_auc, value_at)
from .survival import collapse_events
from .trajectories import supernet_records

HIGHER, LOWER = "higher", "lower"
COLLAPSING, CONTROL = "collapsing", "control"
OK, NOT_RECORDED, NOT_ENOUGH_RUNS, NO_PAIRS = "ok", "not recorded", "not enough runs", "no pairs at this k"
SKIP = OP_INDEX["skip_connect"]
CONVS = (OP_INDEX["nor_conv_1x1"], OP_INDEX["nor_conv_3x3"])


@dataclass(frozen=True)
class WarningOptions:
    """The knobs of the early-warning analysis; defaults and where they come from.

    * ``ks = 0..10``: epochs of warning asked for (our choice; 10 is a fifth of a 50-epoch DARTS search).
      k = 0 is the event epoch itself, a sanity line (the parameter-free count defines the event).
    * ``report_k = 5``: the k the report ranks by (DARTS-ES' window, Zela et al. 2020).
    * ``false_alarm_rate = 0.1``: the fraction of control runs allowed to alarm (our choice).
    * ``min_lead = 1``: an alarm must come at least this many epochs before the event to count (our choice:
      an alarm at the collapse epoch is no warning).
    * ``ratio_lag = 5``, ``ratio_window = 5``: DARTS-ES compares λ_max averaged over the last 5 epochs with the
      same average 5 epochs earlier (Zela et al. 2020, the paper's rule: stop if λ̄(t−5)/λ̄(t) < 0.75).
    * ``trend_window = 5``: epochs of the gradient-correlation slope (our choice, DARTS-ES' window).
    * ``n_resamples = 2000``, ``confidence = 0.95``, ``random_state = 0``: the AUC's bootstrap over runs (our
      choice; fixed seed, so a report is the same every time it is rebuilt).
    * ``aligned_before = 15``, ``aligned_after = 5``: epochs shown around the collapse in the aligned
      trajectories (our choice).
    * ``baseline = "param_free"``: the indicator every other is compared with, pair for pair on the same runs
      (``versus_baseline``): the naive one, the count the collapse criterion itself makes (issue 24: "no indicator
      beats the parameter-free count" is an answer).
    """

    ks: tuple[int, ...] = tuple(range(11))
    report_k: int = 5
    false_alarm_rate: float = 0.1
    min_lead: int = 1
    ratio_lag: int = 5
    ratio_window: int = 5
    trend_window: int = 5
    n_resamples: int = 2000
    confidence: float = 0.95
    random_state: int = 0
    aligned_before: int = 15
    aligned_after: int = 5
    baseline: str = "param_free"

    def __post_init__(self) -> None:
        if not self.ks or any(int(k) != k or k < 0 for k in self.ks):
            raise ConfigError(f"ks must be epochs ≥ 0, got {self.ks!r}")
        if not 0.0 <= self.false_alarm_rate < 1.0:
            raise ConfigError(f"false_alarm_rate must be in [0, 1), got {self.false_alarm_rate!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence!r}")
        for name in ("report_k", "min_lead", "aligned_before", "aligned_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be ≥ 0, got {getattr(self, name)!r}")
        for name in ("ratio_lag", "ratio_window", "trend_window", "n_resamples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {getattr(self, name)!r}")

    @property
    def resampling(self) -> Resampling:
        return Resampling(self.n_resamples, self.confidence, self.random_state)

    @property
    def all_ks(self) -> tuple[int, ...]:
        """``ks`` with ``report_k`` (sorted, once each)."""
        return tuple(sorted({*map(int, self.ks), int(self.report_k)}))


# ---- indicators: a run's records (sorted by epoch) → one value per epoch, from epochs ≤ t only ------------
Compute = Callable[[pd.DataFrame, WarningOptions], np.ndarray]


@dataclass(frozen=True)
class Indicator:
    name: str
    label: str
    short: str                           # for figure panels and legends
    source: str
    direction: str                       # HIGHER or LOWER: which values are alarming
    columns: tuple[str, ...]             # record columns it reads (any one of them is enough)
    compute: Compute = field(repr=False)

    @property
    def sign(self) -> float:
        """Multiplies values so that higher is always more alarming."""
        return 1.0 if self.direction == HIGHER else -1.0


def _numeric(run: pd.DataFrame, column: str) -> np.ndarray:
    if column not in run:
        return np.full(len(run), np.nan)
    return pd.to_numeric(run[column], errors="coerce").to_numpy(dtype=float)


def carried(values: np.ndarray) -> np.ndarray:
    """Each epoch's value, or the last finite one before it (a signal measured every few epochs keeps its
    last measurement until the next: what a researcher watching the run knows at t)."""
    return pd.Series(np.asarray(values, dtype=float)).ffill().to_numpy()


def trailing_mean(epochs: np.ndarray, values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the finite values at epochs in (t − window, t], carried forward where the window holds none."""
    out = np.full(len(epochs), np.nan)
    finite = np.isfinite(values)
    for i, t in enumerate(epochs):
        inside = finite & (epochs > t - window) & (epochs <= t)
        if inside.any():
            out[i] = values[inside].mean()
    return carried(out)


def trailing_slope(epochs: np.ndarray, values: np.ndarray, window: int) -> np.ndarray:
    """Least-squares slope per epoch of the finite values at epochs in (t − window, t]; NaN below 2 points."""
    out = np.full(len(epochs), np.nan)
    finite = np.isfinite(values)
    for i, t in enumerate(epochs):
        inside = finite & (epochs > t - window) & (epochs <= t)
        if inside.sum() >= 2 and np.ptp(epochs[inside]) > 0:
            out[i] = np.polyfit(epochs[inside].astype(float), values[inside], 1)[0]
    return out


def _hessian_max(run: pd.DataFrame) -> np.ndarray:
    """λ_max; runs recorded before the exact spectrum have only ``hessian_eig`` (power iteration, the largest
    eigenvalue in magnitude), read as λ_max as the Hessian figure does."""
    new, old = _numeric(run, "hessian_max"), _numeric(run, "hessian_eig")
    return np.where(np.isfinite(new), new, old)


def _lambda_max(run: pd.DataFrame, options: WarningOptions) -> np.ndarray:
    return carried(_hessian_max(run))


def _lambda_ratio(run: pd.DataFrame, options: WarningOptions) -> np.ndarray:
    epochs = run["epoch"].to_numpy(dtype=float)
    smooth = trailing_mean(epochs, _hessian_max(run), options.ratio_window)
    out = np.full(len(run), np.nan)
    for i, t in enumerate(epochs):
        before = value_at(epochs, smooth, t - options.ratio_lag)
        if math.isfinite(before) and before > 0:      # a ratio of non-positive curvatures says nothing
            out[i] = smooth[i] / before
    return out


def _gc_cos(run: pd.DataFrame, options: WarningOptions) -> np.ndarray:
    return carried(_numeric(run, "gc_cos_mean"))


def _gc_trend(run: pd.DataFrame, options: WarningOptions) -> np.ndarray:
    return trailing_slope(run["epoch"].to_numpy(dtype=float), _numeric(run, "gc_cos_mean"), options.trend_window)


def _edge_op(run: pd.DataFrame, column: str) -> np.ndarray | None:
    """The run's (epochs, 6, 5) matrix of ``column``; None when absent or not NB201's 5 ops (DNAS, factorized)."""
    if column not in run:
        return None
    try:
        arr = stack(run[column].tolist())
    except NbsError:
        return None
    return arr if arr.shape[2] == NUM_OPS else None


def _skip_shares(run: pd.DataFrame) -> np.ndarray | None:
    """skip's share of each edge's op weights: the softmax itself for softmax runs, normalized for sigmoid ones."""
    w = _edge_op(run, "op_weights")
    if w is None:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        return w[:, :, SKIP] / w.sum(axis=2)


def _skip_max(run: pd.DataFrame, options: WarningOptions) -> np.ndarray:
    share = _skip_shares(run)
    return np.full(len(run), np.nan) if share is None else carried(_nan_reduce(np.nanmax, share))


def _skip_mean(run: pd.DataFrame, options: WarningOptions) -> np.ndarray:
    share = _skip_shares(run)
    return np.full(len(run), np.nan) if share is None else carried(_nan_reduce(np.nanmean, share))


def _skip_grad(run: pd.DataFrame, options: WarningOptions) -> np.ndarray:
    """Mean over edges of (mean conv ∂L/∂α − skip ∂L/∂α): > 0 when gradient descent raises skip's α faster
    than the convs'."""
    g = _edge_op(run, "op_grad")
    if g is None:
        return np.full(len(run), np.nan)
    advantage = g[:, :, list(CONVS)].mean(axis=2) - g[:, :, SKIP]
    return carried(_nan_reduce(np.nanmean, advantage))


def _gap(run: pd.DataFrame, options: WarningOptions) -> np.ndarray:
    return carried(_numeric(run, "train_acc") - _numeric(run, "valid_acc"))


def _param_free(run: pd.DataFrame, options: WarningOptions) -> np.ndarray:
    return carried(_numeric(run, "param_free_count"))


def _nan_reduce(reduce, matrix: np.ndarray) -> np.ndarray:
    """Row-wise ``reduce`` over edges, NaN (without a warning) for an all-NaN row."""
    out = np.full(matrix.shape[0], np.nan)
    rows = np.isfinite(matrix).any(axis=1)
    out[rows] = reduce(matrix[rows], axis=1)
    return out


INDICATORS: tuple[Indicator, ...] = (
    Indicator("lambda_max", "λ_max of the α-Hessian (last measured)", "λ_max",
              "Zela et al. 2020 (R-DARTS), ICLR: λ_max of ∇²_α L_valid grows before collapse", HIGHER,
              ("hessian_max", "hessian_eig"), _lambda_max),
    Indicator("lambda_ratio", "λ_max growth λ̄(t) / λ̄(t − 5) (DARTS-ES)", "λ_max ratio (DARTS-ES)",
              "Zela et al. 2020 (R-DARTS), DARTS-ES: stop when λ̄(t − 5)/λ̄(t) < 0.75; λ̄ = mean over 5 epochs",
              HIGHER, ("hessian_max", "hessian_eig"), _lambda_ratio),
    Indicator("gc_cos", "gradient correlation (cosine, mean over ops)", "gradient correlation",
              "Hou et al. 2021 (Single-DARTS) §4.2: uncorrelated w- and α-step gradients drive bi-level collapse",
              LOWER, ("gc_cos_mean",), _gc_cos),
    Indicator("gc_trend", "gradient correlation trend (slope over 5 epochs)", "gradient correlation trend",
              "Hou et al. 2021 (Single-DARTS); the trend as a signal is our formulation", LOWER,
              ("gc_cos_mean",), _gc_trend),
    Indicator("skip_max", "skip's softmax share, max over edges", "skip share, max",
              "skip dominance: Liang et al. 2019 (DARTS+), Chu et al. 2020 (Fair DARTS)", HIGHER,
              ("op_weights",), _skip_max),
    Indicator("skip_mean", "skip's softmax share, mean over edges", "skip share, mean",
              "skip dominance: Liang et al. 2019 (DARTS+), Chu et al. 2020 (Fair DARTS)", HIGHER,
              ("op_weights",), _skip_mean),
    Indicator("skip_grad", "skip's gradient advantage: conv ∂L/∂α − skip ∂L/∂α", "skip gradient advantage",
              "skip's unfair advantage: Chu et al. 2020 (Fair DARTS), 2021 (DARTS−); the formulation is ours", HIGHER,
              ("op_grad",), _skip_grad),
    Indicator("gap", "supernet train − valid accuracy gap", "train − valid gap",
              "supernet overfitting as the cause of collapse: Liang et al. 2019 (DARTS+); formulation ours", HIGHER,
              ("train_acc",), _gap),
    Indicator("param_free", "parameter-free edges of the derived cell", "param-free edges",
              "the naive baseline (our choice): the quantity the collapse criterion itself counts", HIGHER,
              ("param_free_count",), _param_free),
)
INDICATOR_NAMES: tuple[str, ...] = tuple(i.name for i in INDICATORS)


def indicator_series(run: pd.DataFrame, options: WarningOptions = WarningOptions(),
                     indicators: tuple[Indicator, ...] = INDICATORS) -> pd.DataFrame:
    """One run's records → one row per epoch (sorted), one column per indicator, each from epochs ≤ t only."""
    run = run.sort_values("epoch", kind="stable").reset_index(drop=True)
    out = pd.DataFrame({"epoch": run["epoch"].to_numpy(dtype=int)})
    for ind in indicators:
        values = ind.compute(run, options) if any(c in run for c in ind.columns) else np.full(len(run), np.nan)
        out[ind.name] = np.where(np.isfinite(values), values, np.nan)   # ±inf (a 0/0 share) is no value
    return out


def indicator_values(df: pd.DataFrame, options: WarningOptions = WarningOptions(),
                     indicators: tuple[Indicator, ...] = INDICATORS) -> pd.DataFrame:
    """Every run's indicators, long: ``run_dir`` (or ``run``), ``method``, ``seed``, ``epoch``, ``indicator``,
    ``value`` (NaN where the signal is not recorded up to that epoch)."""
    key = _key(df)
    frames = []
    for run_id, run in df.groupby(key, sort=True):
        wide = indicator_series(run, options, indicators)
        long = wide.melt(id_vars="epoch", var_name="indicator", value_name="value")
        long.insert(0, key, run_id)
        long.insert(1, "method", str(run["method"].iloc[0]) if "method" in run else None)
        long.insert(2, "seed", run["seed"].iloc[0] if "seed" in run else None)
        frames.append(long)
    columns = [key, "method", "seed", "epoch", "indicator", "value"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


# ---- the analysis ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EarlyWarning:
    """The result of :func:`early_warning`; every frame is tidy (one row per indicator, k or run).

    * ``events``: :func:`~.survival.collapse_events` plus ``role`` (collapsing | control).
    * ``indicators``: ``indicator``, ``label``, ``short``, ``source``, ``direction``, ``columns``,
      ``runs_recorded``, ``status``.
    * ``auc``: ``indicator``, ``k``, ``auc``, ``ci_low``, ``ci_high``, ``n_cases``, ``n_controls``, ``n_pairs``,
      ``status``.
    * ``auc_within``: the same from pairs of one method only (a collapsing run against controls of its own
      method): pooling methods lets a signal that only tells methods apart score as a warning (gradient
      correlation starts far higher under single-level steps); ``status`` ``no comparable pairs`` where no
      method has both a collapsing run and a control.
    * ``versus_baseline``: ``indicator``, ``k``, ``baseline``, ``difference`` (its AUC minus the baseline's on the
      pairs comparable for both), ``ci_low``, ``ci_high`` (paired bootstrap: both on the same resampled runs),
      ``n_pairs``, ``status``; the baseline's own row is 0.
    * ``alarms``: ``indicator``, ``far_target``, ``threshold`` (raw units; alarm when the value is beyond it in the
      alarming ``direction``), ``controls`` (with the signal), ``false_alarms``, ``far_achieved``, ``cases``,
      ``too_early`` (collapsed before any epoch ≥ ``min_lead`` ahead), ``alarmed``, ``missed``, ``missed_fraction``,
      ``lead_median``, ``lead_q25``, ``lead_q75``, ``lead_min``, ``lead_max``, ``status``.
    * ``leads``: per indicator and collapsing run: ``event_epoch``, ``alarm_epoch`` (NaN: missed), ``lead``, ``missed``.
    * ``stops``: per indicator and run: ``role``, ``alarm_epoch`` (first alarm; NaN: never), ``acc_stop`` (the
      cell derived at the alarm, else the final cell), ``acc_final``, ``acc_best``.
    * ``stop_summary``: per indicator and role (collapsing, control, all): ``runs``, ``stopped``, ``acc_stop_mean``,
      ``acc_final_mean``, ``acc_best_mean``, ``gain_mean`` (stop − final), ``regret_mean`` (best − stop).
    * ``trajectories``: per indicator, role and ``offset`` (epoch − collapse epoch): ``mean``, ``std``, ``n``,
      ``ci_low``, ``ci_high`` over runs (controls aligned on the event epochs of the collapsing runs they are
      matched to, see :func:`aligned_trajectories`).
    """

    status: str
    options: WarningOptions
    criteria: CollapseCriteria
    events: pd.DataFrame
    indicators: pd.DataFrame
    auc: pd.DataFrame
    auc_within: pd.DataFrame
    versus_baseline: pd.DataFrame
    alarms: pd.DataFrame
    leads: pd.DataFrame
    stops: pd.DataFrame
    stop_summary: pd.DataFrame
    trajectories: pd.DataFrame

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def n_collapsing(self) -> int:
        return int((self.events["role"] == COLLAPSING).sum()) if len(self.events) else 0

    @property
    def n_controls(self) -> int:
        return int((self.events["role"] == CONTROL).sum()) if len(self.events) else 0

    def ranking(self, k: int | None = None) -> pd.DataFrame:
        """One row per indicator (all of them, not-recorded ones last): the ``indicators`` columns, the ``auc``
        columns at ``k`` (default ``options.report_k``; their status as ``auc_status``), the ``auc_within`` ones
        prefixed ``within_``, the ``versus_baseline`` ones prefixed ``vs_``, and the ``alarms`` columns
        (``alarm_status``); sorted by AUC."""
        k = self.options.report_k if k is None else k
        at_k = self.auc[self.auc["k"] == k].rename(columns={"status": "auc_status"}).set_index("indicator")
        within = self.auc_within[self.auc_within["k"] == k].set_index("indicator").drop(columns=["k"])
        versus = (self.versus_baseline[self.versus_baseline["k"] == k].set_index("indicator").drop(columns=["k"])
                  if len(self.versus_baseline) else pd.DataFrame())
        alarms = self.alarms.drop(columns=["direction"]).rename(columns={"status": "alarm_status"})
        out = (self.indicators.set_index("indicator").join(at_k.drop(columns=["k"]))
               .join(within.add_prefix("within_")).join(versus.add_prefix("vs_"))
               .join(alarms.set_index("indicator")))
        out["k"] = k
        order = out.assign(_recorded=out["status"] != NOT_RECORDED, _auc=out["auc"].fillna(-1.0))
        order = order.sort_values(["_recorded", "_auc"], ascending=False, kind="stable")
        return order.drop(columns=["_recorded", "_auc"]).reset_index()


def early_warning(df: pd.DataFrame, criteria: CollapseCriteria = CollapseCriteria(),
                  options: WarningOptions = WarningOptions(),
                  indicators: tuple[Indicator, ...] = INDICATORS) -> EarlyWarning:
    """The early-warning analysis of the runs in ``df`` (:func:`~.loading.load_runs` records); see the module doc.
    Table searches are left out (their records are query checkpoints, not epochs)."""
    if options.baseline not in {i.name for i in indicators}:
        raise ConfigError(f"baseline {options.baseline!r} is not one of the indicators "
                          f"({', '.join(i.name for i in indicators)})")
    df = supernet_records(df)
    key = _key(df)
    events = collapse_events(df, criteria) if len(df) else pd.DataFrame(columns=[key, "time", "collapsed"])
    events = events.assign(role=np.where(events["collapsed"].astype(bool), COLLAPSING, CONTROL))
    signals = _signals(df, key, events, options, indicators)
    table = _indicator_table(indicators, signals)
    status = _status(events)
    if status != OK:
        return _not_enough(status, options, criteria, events, table)
    acc = _accuracy(df, key, criteria)
    recorded = set(table.loc[table["status"] != NOT_RECORDED, "indicator"])
    # the baseline's pairs at each k, once: every indicator is compared with them
    base = ({k: pair_matrix(signals[options.baseline], k) for k in options.all_ks}
            if options.baseline in recorded else None)
    auc, within, versus, alarms, leads, stops, trajectories = [], [], [], [], [], [], []
    for ind in indicators:
        runs = signals[ind.name]
        if ind.name not in recorded:
            auc += [_auc_row(ind, k, status=NOT_RECORDED) for k in options.all_ks]
            within += [_auc_row(ind, k, status=NOT_RECORDED) for k in options.all_ks]
            alarms.append(_alarm_row(ind, options, status=NOT_RECORDED))
            continue
        auc += auc_by_k(ind, runs, options)
        within += auc_by_k(ind, runs, options, within_method=True)
        if base is not None:
            versus += versus_baseline(ind, runs, base, options)
        summary, per_run, theta = alarm_leads(ind, runs, events, key, options)
        alarms.append(summary)
        leads.append(per_run)
        stops.append(early_stops(ind, runs, key, acc, theta))
        trajectories.append(aligned_trajectories(ind, runs, options))
    stops_frame = _concat(stops, STOP_COLUMNS)
    return EarlyWarning(OK, options, criteria, events, table, pd.DataFrame(auc), pd.DataFrame(within),
                        pd.DataFrame(versus, columns=VERSUS_COLUMNS), pd.DataFrame(alarms),
                        _concat(leads, ["indicator", key, "method", "seed", "event_epoch", "alarm_epoch", "lead",
                                        "missed"]),
                        stops_frame, stop_summary(stops_frame), _concat(trajectories, TRAJECTORY_COLUMNS))


def _key(df: pd.DataFrame) -> str:
    return "run_dir" if "run_dir" in df else "run"


def _status(events: pd.DataFrame) -> str:
    n_case, n_control = int((events["role"] == COLLAPSING).sum()), int((events["role"] == CONTROL).sum())
    if n_case and n_control:
        return OK
    return (f"{NOT_ENOUGH_RUNS}: {n_case} collapsing and {n_control} control run{'s' if n_control != 1 else ''}; "
            f"the analysis needs at least one of each")


def _signals(df: pd.DataFrame, key: str, events: pd.DataFrame, options: WarningOptions,
             indicators: tuple[Indicator, ...]) -> dict[str, dict[object, RunSignal]]:
    by_run = events.set_index(key)
    out: dict[str, dict[object, RunSignal]] = {ind.name: {} for ind in indicators}
    for run_id, run in df.groupby(key, sort=True):
        wide = indicator_series(run, options, indicators)
        epochs = wide["epoch"].to_numpy(dtype=int)
        event = by_run.loc[run_id]
        method = str(run["method"].iloc[0]) if "method" in run else ""
        for ind in indicators:
            values = wide[ind.name].to_numpy(dtype=float)
            out[ind.name][run_id] = RunSignal(epochs, ind.sign * values, values, int(event["time"]),
                                              bool(event["collapsed"]), method)
    return out


def _indicator_table(indicators: tuple[Indicator, ...], signals: dict[str, dict[object, RunSignal]]) -> pd.DataFrame:
    rows = []
    for ind in indicators:
        recorded = sum(bool(np.isfinite(s.values).any()) for s in signals[ind.name].values())
        rows.append({"indicator": ind.name, "label": ind.label, "short": ind.short, "source": ind.source,
                     "direction": ind.direction, "columns": ", ".join(ind.columns), "runs_recorded": recorded,
                     "status": OK if recorded else NOT_RECORDED})
    return pd.DataFrame(rows, columns=["indicator", "label", "short", "source", "direction", "columns",
                                       "runs_recorded", "status"])


def _accuracy(df: pd.DataFrame, key: str, criteria: CollapseCriteria) -> dict[object, tuple[np.ndarray, np.ndarray]]:
    """Per run: (epochs, ground truth of the cell derived at each epoch)."""
    column = record_column(criteria.column)
    out = {}
    for run_id, run in df.sort_values("epoch", kind="stable").groupby(key, sort=True):
        acc = _numeric(run, column)
        out[run_id] = (run["epoch"].to_numpy(dtype=int), acc)
    return out


# ---- (a) AUC against k -------------------------------------------------------------------------------
def auc_by_k(ind: Indicator, runs: dict[object, RunSignal], options: WarningOptions,
             within_method: bool = False) -> list[dict]:
    rows = []
    for k in options.all_ks:
        wins, _, _ = pair_matrix(runs, k, within_method)
        valid = np.isfinite(wins)
        if not valid.any():
            rows.append(_auc_row(ind, k, status=NO_PAIRS))
            continue
        low, high = bootstrap_auc(wins, options.resampling)
        rows.append(_auc_row(ind, k, auc=pairwise_auc(wins), ci_low=low, ci_high=high,
                             n_cases=int(valid.any(axis=1).sum()), n_controls=int(valid.any(axis=0).sum()),
                             n_pairs=int(valid.sum())))
    return rows


VERSUS_COLUMNS = ["indicator", "k", "baseline", "difference", "ci_low", "ci_high", "n_pairs", "status"]


def versus_baseline(ind: Indicator, runs: dict[object, RunSignal], base: dict[int, tuple[np.ndarray, list, list]],
                    options: WarningOptions) -> list[dict]:
    """Per k: the indicator's AUC minus the baseline's (``base``: its :func:`~.pair_auc.pair_matrix` per k), on
    the (collapsing, control) pairs comparable for both, with a paired bootstrap interval
    (:func:`~.pair_auc.paired_difference`)."""
    rows = []
    for k in options.all_ks:
        wins, cases, controls = pair_matrix(runs, k)
        theirs = aligned(*base[k], cases, controls)
        diff = paired_difference(wins, theirs, options.resampling)
        rows.append({"indicator": ind.name, "k": int(k), "baseline": options.baseline, **diff,
                     "status": OK if diff["n_pairs"] else NO_PAIRS})
    return rows


def _auc_row(ind: Indicator, k: int, *, status: str = OK, auc: float = math.nan, ci_low: float = math.nan,
             ci_high: float = math.nan, n_cases: int = 0, n_controls: int = 0, n_pairs: int = 0) -> dict:
    return {"indicator": ind.name, "k": int(k), "auc": auc, "ci_low": ci_low, "ci_high": ci_high,
            "n_cases": n_cases, "n_controls": n_controls, "n_pairs": n_pairs, "status": status}


# ---- (b) alarms at a false-alarm rate, lead times ------------------------------------------------------
def control_threshold(maxima: np.ndarray, false_alarm_rate: float) -> float:
    """The oriented threshold θ (alarm: score > θ) at which at most ``false_alarm_rate`` of the controls, whose
    highest scores are ``maxima``, ever alarm: the (m+1)-th highest, m = ⌊rate · n⌋ (−inf if all may alarm)."""
    allowed = int(math.floor(false_alarm_rate * len(maxima) + 1e-9))
    ranked = np.sort(maxima)[::-1]
    return float(ranked[allowed]) if allowed < len(ranked) else -math.inf


def first_alarm(s: RunSignal, theta: float, until: float = math.inf) -> float:
    """The first epoch ≤ ``until`` whose score exceeds θ (NaN: none)."""
    hit = np.flatnonzero((s.scores > theta) & (s.epochs <= until))   # NaN > θ is False
    return float(s.epochs[hit[0]]) if hit.size else math.nan


def alarm_leads(ind: Indicator, runs: dict[object, RunSignal], events: pd.DataFrame, key: str,
                options: WarningOptions) -> tuple[dict, pd.DataFrame, float]:
    """(summary row, per collapsing run leads, θ): the threshold from the controls' whole observed searches,
    then each collapsing run's first alarm at least ``min_lead`` epochs before its event."""
    maxima = np.array([np.nanmax(s.scores) for s in runs.values()
                       if not s.collapsed and np.isfinite(s.scores).any()])
    if not maxima.size:
        return _alarm_row(ind, options, status="no control run has this signal"), pd.DataFrame(), math.nan
    theta = control_threshold(maxima, options.false_alarm_rate)
    ids = events.set_index(key)
    rows = []
    for run_id, s in runs.items():
        if not s.collapsed:
            continue
        warnable = bool((s.epochs <= s.time - options.min_lead).any())
        alarm = first_alarm(s, theta, s.time - options.min_lead)
        rows.append({"indicator": ind.name, key: run_id, "method": ids.loc[run_id].get("method"),
                     "seed": ids.loc[run_id].get("seed"), "event_epoch": s.time, "alarm_epoch": alarm,
                     "lead": s.time - alarm, "missed": warnable and not math.isfinite(alarm), "warnable": warnable})
    per_run = pd.DataFrame(rows)
    leads = per_run.loc[per_run["lead"].notna(), "lead"].to_numpy(dtype=float)
    warnable = int(per_run["warnable"].sum())
    summary = _alarm_row(ind, options, threshold=ind.sign * theta, n_controls=len(maxima),
                         false_alarms=int((maxima > theta).sum()), n_cases=len(per_run),
                         too_early=len(per_run) - warnable, alarmed=len(leads), missed=int(per_run["missed"].sum()),
                         leads=leads)
    return summary, per_run.drop(columns=["warnable"]), theta


def _alarm_row(ind: Indicator, options: WarningOptions, *, status: str = OK, threshold: float = math.nan,
               n_controls: int = 0, false_alarms: int = 0, n_cases: int = 0, too_early: int = 0, alarmed: int = 0,
               missed: int = 0, leads: np.ndarray | None = None) -> dict:
    leads = np.array([]) if leads is None else leads
    warnable = n_cases - too_early
    quant = (lambda q: float(np.quantile(leads, q))) if leads.size else (lambda q: math.nan)
    return {"indicator": ind.name, "direction": ind.direction, "far_target": options.false_alarm_rate,
            "threshold": threshold, "controls": n_controls, "false_alarms": false_alarms,
            "far_achieved": false_alarms / n_controls if n_controls else math.nan,
            "cases": n_cases, "too_early": too_early, "alarmed": alarmed, "missed": missed,
            "missed_fraction": missed / warnable if warnable else math.nan,
            "lead_median": quant(0.5), "lead_q25": quant(0.25), "lead_q75": quant(0.75),
            "lead_min": float(leads.min()) if leads.size else math.nan,
            "lead_max": float(leads.max()) if leads.size else math.nan, "status": status}


# ---- (c) what an early stop on the alarm returns ------------------------------------------------------
STOP_COLUMNS = ["indicator", "run_dir", "role", "alarm_epoch", "acc_stop", "acc_final", "acc_best"]


def early_stops(ind: Indicator, runs: dict[object, RunSignal], key: str,
                acc: dict[object, tuple[np.ndarray, np.ndarray]], theta: float) -> pd.DataFrame:
    """Per run: the first alarm over the whole search (θ from :func:`alarm_leads`) and the ground truth of the
    cell derived there, the final one and the best one."""
    columns = ["indicator", key, *STOP_COLUMNS[2:]]
    if math.isnan(theta):
        return pd.DataFrame(columns=columns)
    rows = []
    for run_id, s in runs.items():
        epochs, values = acc[run_id]
        alarm = first_alarm(s, theta)
        final = float(values[-1])
        at_alarm = value_at(epochs, values, alarm) if math.isfinite(alarm) else final
        rows.append({"indicator": ind.name, key: run_id, "role": COLLAPSING if s.collapsed else CONTROL,
                     "alarm_epoch": alarm, "acc_stop": at_alarm, "acc_final": final,
                     "acc_best": float(np.nanmax(values)) if np.isfinite(values).any() else math.nan})
    return pd.DataFrame(rows, columns=columns)


def stop_summary(stops: pd.DataFrame) -> pd.DataFrame:
    """Per indicator and role (collapsing, control, all): means of what the early stop returned."""
    rows = []
    for name, group in stops.groupby("indicator", sort=False):
        for role, part in ((COLLAPSING, group[group["role"] == COLLAPSING]),
                           (CONTROL, group[group["role"] == CONTROL]), ("all", group)):
            rows.append({"indicator": name, "role": role, "runs": len(part),
                         "stopped": int(part["alarm_epoch"].notna().sum()),
                         "acc_stop_mean": part["acc_stop"].mean(), "acc_final_mean": part["acc_final"].mean(),
                         "acc_best_mean": part["acc_best"].mean(),
                         "gain_mean": (part["acc_stop"] - part["acc_final"]).mean(),
                         "regret_mean": (part["acc_best"] - part["acc_stop"]).mean()})
    return pd.DataFrame(rows, columns=["indicator", "role", "runs", "stopped", "acc_stop_mean", "acc_final_mean",
                                       "acc_best_mean", "gain_mean", "regret_mean"])


# ---- trajectories aligned on the collapse -------------------------------------------------------------
TRAJECTORY_COLUMNS = ["indicator", "role", "offset", "mean", "std", "n", "ci_low", "ci_high"]


def aligned_trajectories(ind: Indicator, runs: dict[object, RunSignal], options: WarningOptions) -> pd.DataFrame:
    """Mean and interval over runs of the indicator (raw units) at ``offset`` = epoch − collapse epoch. A
    collapsing run is aligned on its own event; a control, like in the AUC, on the events of the collapsing
    runs it is matched to (still observed then), averaged over them: one value per run and offset."""
    cases = [s for s in runs.values() if s.collapsed]
    rows = []
    for run_id, s in runs.items():
        anchors = [s.time] if s.collapsed else [c.time for c in cases if c.time <= s.time]
        for offset in range(-options.aligned_before, options.aligned_after + 1):
            values = [value_at(s.epochs, s.values, t + offset) for t in anchors
                      if s.epochs[0] <= t + offset <= s.epochs[-1]]
            values = [v for v in values if math.isfinite(v)]
            if values:
                rows.append({"run": run_id, "role": COLLAPSING if s.collapsed else CONTROL,
                             "epoch": offset, "value": float(np.mean(values))})
    if not rows:
        return pd.DataFrame(columns=TRAJECTORY_COLUMNS)
    curves = epoch_curves(pd.DataFrame(rows), "value", by=("role",), rule=DEFAULT_RULE)
    return curves.rename(columns={"epoch": "offset"}).assign(indicator=ind.name)[TRAJECTORY_COLUMNS]


# ---- too few runs ---------------------------------------------------------------------------------------
def _not_enough(status: str, options: WarningOptions, criteria: CollapseCriteria, events: pd.DataFrame,
                table: pd.DataFrame) -> EarlyWarning:
    """Every indicator listed (not-recorded ones as such), every number NaN, the status saying why."""
    by_name = {i.name: i for i in INDICATORS}
    auc, alarms = [], []
    for row in table.itertuples(index=False):
        ind = by_name.get(row.indicator) or Indicator(row.indicator, row.label, row.short, row.source,
                                                      row.direction, (), _param_free)
        why = NOT_RECORDED if row.status == NOT_RECORDED else NOT_ENOUGH_RUNS
        auc += [_auc_row(ind, k, status=why) for k in options.all_ks]
        alarms.append(_alarm_row(ind, options, status=why))
    no_stops = pd.DataFrame(columns=STOP_COLUMNS)
    return EarlyWarning(status, options, criteria, events, table, pd.DataFrame(auc), pd.DataFrame(auc),
                        pd.DataFrame(columns=VERSUS_COLUMNS), pd.DataFrame(alarms),
                        pd.DataFrame(), no_stops, stop_summary(no_stops), pd.DataFrame(columns=TRAJECTORY_COLUMNS))


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


# ---- for reports -----------------------------------------------------------------------------------------
def _num(v: float, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if v is not None and math.isfinite(v) else "–"


def _auc_text(status: str, auc: float, low: float, high: float) -> str:
    if status != OK:
        return str(status)
    interval = f" [{low:.2f}, {high:.2f}]" if math.isfinite(low) and math.isfinite(high) else ""
    return f"{auc:.2f}{interval}"


def _lead_text(r: pd.Series) -> str:
    if not math.isfinite(r.get("lead_median", math.nan)):
        return "–"
    return f"{r['lead_median']:g} [{r['lead_q25']:g}, {r['lead_q75']:g}]"


def _short(result: EarlyWarning, name: str) -> str:
    shorts = result.indicators.set_index("indicator")["short"]
    return str(shorts.get(name, name))


def _versus_text(r: pd.Series, baseline: str) -> str:
    """The paired difference from the baseline, "baseline" on its own row."""
    if r["indicator"] == baseline:
        return "(baseline)"
    if r.get("vs_status") != OK or not math.isfinite(r.get("vs_difference", math.nan)):
        return "–"
    interval = (f" [{r['vs_ci_low']:+.2f}, {r['vs_ci_high']:+.2f}]"
                if math.isfinite(r["vs_ci_low"]) and math.isfinite(r["vs_ci_high"]) else "")
    return f"{r['vs_difference']:+.2f}{interval}"


def warning_display(result: EarlyWarning, k: int | None = None) -> pd.DataFrame:
    """:meth:`EarlyWarning.ranking` as strings: indicators ranked by AUC at ``k`` with the interval, runs
    compared, alarms at the false-alarm rate, lead times and the early stop's gain on collapsing runs."""
    k = result.options.report_k if k is None else k
    ranking = result.ranking(k)
    gains = (result.stop_summary[result.stop_summary["role"] == COLLAPSING].set_index("indicator")["gain_mean"]
             if len(result.stop_summary) else pd.Series(dtype=float))
    far = f"{result.options.false_alarm_rate:.0%}"
    base_label = _short(result, result.options.baseline)
    rows = {}
    for _, r in ranking.iterrows():
        auc = _auc_text(r["auc_status"], r["auc"], r["ci_low"], r["ci_high"])
        within = _auc_text(r["within_status"], r["within_auc"], r["within_ci_low"], r["within_ci_high"])
        shown = r["status"] == OK and result.ok
        rows[r["label"]] = {
            "alarming": f"{r['direction']} values",
            f"AUC at k = {k} [95% CI]": auc,
            "runs (collapsing / control)": (f"{int(r['n_cases'])} / {int(r['n_controls'])}"
                                            if shown and r["n_pairs"] > 0 else "–"),
            "AUC within a method [95% CI] (pairs)": (f"{within} ({int(r['within_n_pairs'])})"
                                                     if shown and r["within_n_pairs"] > 0 else within),
            f"AUC − {base_label} [95% CI]": _versus_text(r, result.options.baseline) if shown else "–",
            f"missed at {far} false alarms": (f"{r['missed_fraction']:.0%} ({int(r['missed'])}/"
                                              f"{int(r['cases'] - r['too_early'])})"
                                              if shown and math.isfinite(r["missed_fraction"]) else "–"),
            "lead, median [IQR] (epochs)": _lead_text(r) if shown else "–",
            "early stop − final (collapsing)": _num(gains.get(r["indicator"], math.nan)) if shown else "–",
            "source": r["source"],
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "indicator"
    return frame


def lead_display(result: EarlyWarning) -> pd.DataFrame:
    """Per recorded indicator: the threshold, false alarms on controls, and every collapsing run's lead time."""
    rows = {}
    labels = result.indicators.set_index("indicator")["label"]
    for _, r in result.alarms.iterrows():
        if r["status"] != OK:
            continue
        leads = result.leads[result.leads["indicator"] == r["indicator"]] if len(result.leads) else pd.DataFrame()
        shown = sorted(int(v) for v in leads["lead"].dropna()) if len(leads) else []
        op = ">" if r["direction"] == HIGHER else "<"
        rows[labels[r["indicator"]]] = {
            "alarm when": f"{op} {r['threshold']:.4g}" if math.isfinite(r["threshold"]) else "always",
            "false alarms (controls)": f"{int(r['false_alarms'])}/{int(r['controls'])}",
            "collapses warned": f"{int(r['alarmed'])}/{int(r['cases'] - r['too_early'])}",
            "lead times (epochs)": ", ".join(map(str, shown)) or "–",
            "lead min–max": (f"{r['lead_min']:g}–{r['lead_max']:g}" if math.isfinite(r["lead_min"]) else "–"),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index",
                                   columns=["alarm when", "false alarms (controls)", "collapses warned",
                                            "lead times (epochs)", "lead min–max"])
    frame.index.name = "indicator"
    return frame


def stop_display(result: EarlyWarning) -> pd.DataFrame:
    """Per recorded indicator: mean ground truth of the cell an early stop on the alarm returns, against the
    final and the best cell, for collapsing runs and for controls."""
    rows = {}
    labels = result.indicators.set_index("indicator")["label"]
    summary = result.stop_summary.set_index(["indicator", "role"]) if len(result.stop_summary) else None
    for name in result.alarms.loc[result.alarms["status"] == OK, "indicator"]:
        if summary is None or (name, COLLAPSING) not in summary.index:
            continue
        case, control = summary.loc[(name, COLLAPSING)], summary.loc[(name, CONTROL)]
        rows[labels[name]] = {
            "collapsing: at stop": _num(case["acc_stop_mean"]), "collapsing: final": _num(case["acc_final_mean"]),
            "collapsing: best": _num(case["acc_best_mean"]),
            "collapsing: stopped": f"{int(case['stopped'])}/{int(case['runs'])}",
            "controls: at stop": _num(control["acc_stop_mean"]), "controls: final": _num(control["acc_final_mean"]),
            "controls: stopped": f"{int(control['stopped'])}/{int(control['runs'])}",
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "indicator"
    return frame


def warning_notes(result: EarlyWarning) -> tuple[str, ...]:
    """The definitions, printed under the report's tables."""
    o = result.options
    notes = [
        f"Runs: {result.n_collapsing} collapsing, {result.n_controls} control (never collapsed; censored at their "
        f"last recorded epoch), all methods pooled. Event: the first epoch at which the collapse criterion held, as "
        f"in the survival analysis. {result.criteria.describe()}",
        f"AUC at k: each collapsing run's indicator k epochs before its collapse against each control's at the same "
        f"epoch, controls still observed at the collapse epoch only; the fraction of pairs ordered the alarming way "
        f"(ties count 0.5); 0.5 = no better than chance. [a, b]: {o.confidence:.0%} percentile bootstrap over runs "
        f"({o.n_resamples} resamples, random_state={o.random_state}; none with fewer than 2 runs on a side).",
        f"Indicators use only records up to the epoch they are read at (a signal measured every few epochs keeps its "
        f"last value). Alarms: threshold at which at most {o.false_alarm_rate:.0%} of the control runs ever cross it; "
        f"a collapse is warned if its run crosses at least {o.min_lead} epoch(s) before; lead = collapse epoch − "
        f"first alarm; missed: warnable collapses without an alarm.",
        "Early stop: the ground truth of the cell derived at the first alarm (the final cell when a run never "
        "alarms), mean over runs.",
        "Pooling methods: a signal that only tells methods apart (gradient correlation is 1 for single-level methods) "
        "scores as if it warned. AUC within a method counts only pairs of a collapsing run and a control of the same "
        "method (the number of such pairs in brackets; none where no method has runs of both kinds).",
        f"AUC − {_short(result, o.baseline)}: the indicator's AUC minus the naive baseline's ({o.baseline}), both on "
        f"the pairs comparable for both; [a, b]: {o.confidence:.0%} paired bootstrap (both AUCs on the same resampled "
        f"runs). An interval above 0 is an indicator that beats the baseline on these runs.",
    ]
    if not result.ok:
        notes.insert(0, f"Not analysed — {result.status}.")
    return tuple(notes)
