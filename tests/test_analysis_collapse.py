"""Collapse statistics, epoch curves and table formatting on hand-made records with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nasbench_stability.analysis import CollapseCriteria, collapse_display, collapse_per_run, collapse_summary
from nasbench_stability.analysis.curves import array_epoch_curves, epoch_curves
from nasbench_stability.analysis.tables import TimeUnit, format_mean_std
from nasbench_stability.errors import NbsError

ACC = "bench_cifar10_test_200"


def records(method: str, seed: int, acc: list[float], param_free: list[int]) -> pd.DataFrame:
    n = len(acc)
    return pd.DataFrame({"method": method, "seed": seed, "run_dir": f"/runs/{method}-seed{seed}",
                         "epoch": range(1, n + 1), ACC: acc, "param_free_count": param_free})


@pytest.fixture
def runs() -> pd.DataFrame:
    return pd.concat([
        records("m1", 0, [90.0, 93.0, 92.0, 85.0], [2, 2, 3, 5]),   # peaks at 2, falls 8 points, ends 5 param-free
        records("m1", 1, [91.0, 91.0, 92.0, 92.0], [1, 2, 2, 2]),   # best first reached at 3, no drop
        records("m2", 0, [88.0, 94.0, 90.0], [3, 3, 4]),            # shorter run; drops 4 points; 4 param-free
    ], ignore_index=True).sample(frac=1.0, random_state=0)        # order of rows must not matter


def test_collapse_per_run_known_answers(runs):
    per_run = collapse_per_run(runs).set_index("run_dir")
    a, b, c = (per_run.loc[f"/runs/{k}"] for k in ("m1-seed0", "m1-seed1", "m2-seed0"))
    assert (a["best_epoch"], a["acc_best"], a["acc_end"], a["drop"]) == (2, 93.0, 85.0, -8.0)
    assert a["first_param_free_epoch"] == 3 and a["final_param_free"] == 5 and a["collapsed"]
    assert (b["best_epoch"], b["drop"]) == (3, 0.0) and math.isnan(b["first_param_free_epoch"])
    assert not b["collapsed"]
    assert (c["best_epoch"], c["drop"], c["epochs_recorded"], c["first_param_free_epoch"]) == (2, -4.0, 3, 1)
    assert not c["collapsed"]   # 4 < 5 param-free edges and a 4-point drop < 5


def test_collapse_summary_known_answers(runs):
    summary = collapse_summary(runs)
    m1, m2 = summary.loc["m1"], summary.loc["m2"]
    assert m1["seeds"] == 2 and m1["best_epoch_mean"] == 2.5
    assert m1["acc_best_mean"] == 92.5 and m1["acc_best_std"] == pytest.approx(np.std([93, 92], ddof=1))
    assert m1["acc_end_mean"] == 88.5 and m1["drop_mean"] == -4.0
    assert m1["param_free_seeds"] == 1 and m1["first_param_free_epoch_mean"] == 3.0
    assert m1["collapsed_fraction"] == 0.5 and m2["collapsed_fraction"] == 0.0
    assert math.isnan(m2["acc_best_std"])   # one seed: no spread
    shown = collapse_display(summary)
    assert shown.loc["m1", "collapsed"] == "50% (1/2) [9%, 91%]"          # Wilson interval of 1 of 2
    assert shown.loc["m1", "first epoch ≥ 50% param-free"] == "3.0 (1/2)"  # one seed: no interval
    # two seeds: the bootstrap's resampled means are 92, 92.5 and 93, so its 95% interval is their range
    assert shown.loc["m1", "test acc. at best"] == "92.50 ± 0.71 [92.00, 93.00]"
    assert shown.loc["m2", "test acc. at end"] == "90.00"


def test_collapse_thresholds_are_parameters(runs):
    strict = CollapseCriteria(drop_points=4.0, param_free_fraction=0.75)
    per_run = collapse_per_run(runs, strict).set_index("run_dir")
    assert strict.param_free_edges == 5                       # ceil(0.75 · 6)
    assert per_run.loc["/runs/m2-seed0", "collapsed"]          # a 4-point drop now counts
    assert per_run.loc["/runs/m1-seed0", "first_param_free_epoch"] == 4
    assert math.isnan(per_run.loc["/runs/m2-seed0", "first_param_free_epoch"])
    text = CollapseCriteria().describe()
    assert "≥ 3 of 6" in text and "≥ 5 of 6" in text and "5 points" in text


def test_collapse_needs_its_columns():
    with pytest.raises(NbsError, match="param_free_count"):
        collapse_per_run(pd.DataFrame({"epoch": [1], ACC: [90.0]}))


def test_epoch_curves_average_over_the_seeds_that_reached_each_epoch(runs):
    curves = epoch_curves(runs, ACC).set_index(["method", "epoch"])
    assert curves.loc[("m1", 2), "mean"] == 92.0 and curves.loc[("m1", 2), "n"] == 2
    assert curves.loc[("m1", 1), "std"] == pytest.approx(np.std([90, 91], ddof=1))
    assert curves.loc[("m2", 3), "n"] == 1 and math.isnan(curves.loc[("m2", 3), "std"])
    assert ("m2", 4) not in curves.index


def test_array_curves_reduce_edges_per_op():
    weights = np.zeros((6, 5))
    weights[:, 1] = np.arange(6)           # skip: mean over edges 2.5
    weights[0, 3] = np.nan                 # a NaN (e.g. no gradient correlation) is skipped
    weights[1:, 3] = 6.0
    df = pd.DataFrame({"method": "m", "seed": 0, "run_dir": "r", "epoch": [1], "op_grad": [weights.ravel()]})
    curves = array_epoch_curves(df, "op_grad").set_index("op")["mean"]
    assert curves["skip_connect"] == 2.5 and curves["nor_conv_3x3"] == 6.0 and curves["none"] == 0.0


def test_format_mean_std_and_time_units():
    assert format_mean_std(93.456, 0.1234, 3) == "93.46 ± 0.12"
    assert format_mean_std(93.456, float("nan"), 1) == "93.46"
    assert format_mean_std(float("nan"), float("nan"), 0) == "–"
    assert TimeUnit.for_seconds([30.0]).name == "s"
    assert TimeUnit.for_seconds([30.0, 600.0]).name == "min"
    assert TimeUnit.for_seconds([8000.0]).name == "h"
