"""`nbs reproduce` and BN modes: a printed row stored once per BN mode (published.csv's
``track_running_stats``) is compared with the run of the same mode; a print whose source states no mode
stands for either and says so; the two circulating sets of NB201's weight-sharing numbers are both
bundled (issue 22 item 11)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from nasbench_stability.errors import NbsError
from nasbench_stability.reproduce import compare as compare_module
from nasbench_stability.reproduce import published as published_module
from nasbench_stability.reproduce.experiments import EXPERIMENTS, Experiment, Row
from nasbench_stability.reproduce.published import (PublishedRef, load_published, published_cell,
                                                    read_published)

HEADER = "paper,table,row,setting,dataset,split,kind,trial,value,std,seeds,track_running_stats,note\n"
# a made-up table 99: GDAS printed once per BN mode, RSPS with no mode stated, SETN only with BN on, and an
# alternate source (table 98) that prints ENAS with BN on where table 99 states no mode
TABLE = HEADER + """\
single-darts,99,GDAS,,cifar10,test,mean_std,,93.61,0.09,3,true,printed with BN on
single-darts,99,GDAS,,cifar10,test,mean_std,,93.51,0.13,3,false,printed with BN off
single-darts,99,RSPS,,cifar10,test,mean_std,,87.66,1.69,3,,
single-darts,99,SETN,,cifar10,test,mean_std,,87.64,0.00,3,True,
single-darts,99,ENAS,,cifar10,test,mean_std,,54.30,0.00,3,,
single-darts,98,ENAS,,cifar10,test,mean_std,,53.89,0.58,3,true,
"""


@pytest.fixture
def table(monkeypatch) -> pd.DataFrame:
    df = read_published(io.StringIO(TABLE))
    monkeypatch.setattr(published_module, "load_published", lambda: df)
    return df


def ref(row: str) -> PublishedRef:
    return PublishedRef("single-darts", "99", row)


def test_a_run_is_compared_with_the_print_of_its_own_bn_mode(table):
    on = published_cell(ref("GDAS"), "cifar10", "test", bn=True)
    off = published_cell(ref("GDAS"), "cifar10", "test", bn=False)
    assert (on.mean, on.std, on.bn, on.bn_match) == (93.61, 0.09, True, "same")
    assert (off.mean, off.std, off.bn, off.bn_match) == (93.51, 0.13, False, "same")
    assert on.note == "printed with BN on" and off.note == "printed with BN off"
    assert on.bn_display(True) == "BN on, as ours" and off.bn_display(False) == "BN off, as ours"


def test_a_print_whose_bn_mode_is_not_stated_is_used_for_both_and_marked(table):
    for bn, word in ((True, "on"), (False, "off")):
        cell = published_cell(ref("RSPS"), "cifar10", "test", bn=bn)
        assert (cell.mean, cell.bn, cell.bn_match) == (87.66, None, "not stated")
        assert cell.bn_display(bn) == f"BN mode not stated; ours {word}"
    assert published_cell(ref("RSPS"), "cifar10", "test").bn_display(None) == "BN mode not stated"


def test_a_print_of_the_other_mode_only_is_still_shown_and_says_so(table):
    cell = published_cell(ref("SETN"), "cifar10", "test", bn=False)
    assert (cell.mean, cell.bn, cell.bn_match) == (87.64, True, "other")
    assert cell.bn_display(False) == "BN on; ours off"
    # without a run (ours unknown) a print of unstated mode comes first, else the first in the file
    assert published_cell(ref("GDAS"), "cifar10", "test").mean == 93.61
    assert published_cell(ref("GDAS"), "cifar10", "test").bn_match == ""


def test_an_alternate_source_is_taken_only_where_it_matches_the_runs_mode_better(table):
    enas = PublishedRef("single-darts", "99", "ENAS", alternates=(PublishedRef("single-darts", "98", "ENAS"),))
    on = published_cell(enas, "cifar10", "test", bn=True)
    assert (on.mean, on.bn, on.bn_match) == (53.89, True, "same")
    assert on.note.startswith("from Single-DARTS (Hou et al., paper 001), Table 98 (ENAS)")
    off = published_cell(enas, "cifar10", "test", bn=False)
    assert (off.mean, off.bn, off.bn_match) == (54.30, None, "not stated") and not off.note
    assert published_cell(enas, "cifar10", "test").mean == 54.30


def test_bn_modes_are_checked_and_one_row_may_be_stored_once_per_mode():
    bad = HEADER + "single-darts,99,GDAS,,cifar10,test,mean_std,,93.61,0.09,3,yes,\n"
    with pytest.raises(NbsError, match="line\\(s\\) 2 are malformed"):
        read_published(io.StringIO(bad))
    twice = HEADER + "single-darts,99,GDAS,,cifar10,test,mean_std,,93.61,0.09,3,true,\n" * 2
    with pytest.raises(NbsError, match="holds a number twice"):
        read_published(io.StringIO(twice))
    assert list(read_published(io.StringIO(TABLE))["track_running_stats"]) == ["true", "false", "", "true", "", "true"]


# ---- through the comparison ------------------------------------------------------------------------
def _records(bn_by_seed: list[bool], column: str = "bench_cifar10_test_200") -> pd.DataFrame:
    return pd.DataFrame([{"run_dir": f"r{seed}", "seed": seed, "epoch": 1, "status": "finished",
                          "track_running_stats": bn, column: 93.0 + seed} for seed, bn in enumerate(bn_by_seed)])


def test_the_runs_bn_mode_is_read_from_its_final_records():
    assert compare_module.run_bn(_records([True, True])) is True
    assert compare_module.run_bn(_records([False])) is False
    assert compare_module.run_bn(_records([True, False])) is None          # seeds disagree: no single mode
    assert compare_module.run_bn(_records([True]).drop(columns="track_running_stats")) is None
    assert compare_module.run_bn(pd.DataFrame()) is None


@pytest.mark.parametrize("bn, published, shown", [
    (True, 93.61, "93.61 ± 0.09 (BN on, as ours)"),
    (False, 93.51, "93.51 ± 0.13 (BN off, as ours)"),
])
def test_compare_takes_each_runs_own_bn_print_and_the_report_shows_the_mode(table, monkeypatch, bn, published, shown):
    records = _records([bn, bn])
    monkeypatch.setattr(compare_module, "row_records", lambda where, seeds: records)
    monkeypatch.setattr(compare_module, "_unfinal_runs", lambda df: {})
    monkeypatch.setattr(compare_module, "_seed_lines", lambda row, df, last: [])
    exp = Experiment("t", "t", seeds=2, columns=(("cifar10", "test"),),
                     rows=(Row(ref("GDAS"), method="gdas"), Row(ref("RSPS"), method="rsps"),
                           Row(ref("SETN"), method="rs", name="RS")),   # a table search trains no BN
                     what_to_see="")
    bench = SimpleNamespace(columns=[])
    lines = compare_module.compare(exp, Path("nowhere"), (0, 1), bench).lines.set_index("row")
    assert lines.loc["GDAS", "published"] == published and lines.loc["GDAS", "published_display"] == shown
    assert lines.loc["GDAS", "mean"] == pytest.approx(np.mean([93.0, 94.0]))
    word = "on" if bn else "off"
    assert lines.loc["RSPS", "published_display"] == f"87.66 ± 1.69 (BN mode not stated; ours {word})"
    assert lines.loc["RS", "published_display"] == "87.64 ± 0.00"


# ---- the bundled numbers ----------------------------------------------------------------------------
def test_both_circulating_nb201_sets_are_bundled_and_neither_states_its_bn_mode():
    df = load_published()
    c10 = df[(df["dataset"] == "cifar10") & (df["split"] == "test")].set_index(["paper", "row"])["value"]
    single = {r: c10[("single-darts", r)] for r in ("GDAS", "RSPS", "SETN", "ENAS")}
    relizo = {r: c10[("relizo", r)] for r in ("GDAS", "RSPS", "SETN", "ENAS")}
    assert single == {"GDAS": 93.51, "RSPS": 87.66, "SETN": 86.19, "ENAS": 54.30}
    assert relizo == {"GDAS": 93.61, "RSPS": 84.07, "SETN": 87.64, "ENAS": 53.89}
    assert (df.loc[df["paper"].isin(["single-darts", "relizo"]), "track_running_stats"] == "").all()
    # no source found says which set is which BN mode: every run compares with Single-DARTS' print, marked so
    gdas = next(r for r in EXPERIMENTS["single-darts-table1"].rows if r.label == "GDAS")
    assert gdas.published.alternates == (PublishedRef("relizo", "2", "GDAS"),)
    for bn in (True, False):
        cell = published_cell(gdas.published, "cifar10", "test", bn=bn)
        assert (cell.mean, cell.bn_match) == (93.51, "not stated") and not cell.note.startswith("from ")
