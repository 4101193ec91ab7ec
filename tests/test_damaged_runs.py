"""Damaged bookkeeping files in a run directory, through the real CLI.

A garbage, empty or wrong-typed ``status.json`` is rewritten from the checkpoint: a finished run is
reported finished, an interrupted one resumes and ends with the records of an uninterrupted run.
A damaged or missing record of a done epoch cannot be re-derived, so ``nbs run`` names it in one
line and changes nothing; ``nbs report`` / ``nbs plot`` leave the epoch out with a one-line warning.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from files_helpers import RUN_ARGS, RUN_NAME, copy_run, nbs_call, snapshot
from nasbench_stability.analysis.loading import load_runs
from nasbench_stability.engine.records import read_records
from test_engine_runs import assert_one_line_error, comparable

STATUS_CASES = {
    "garbage": b"{not json", "empty": b"", "list": b"[]", "string": b'"x"', "state-5": b'{"state": 5}',
    "no-epochs": b'{"state": "finished"}', "binary": b"\xff\xfe\x00",
}


def _status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


@pytest.mark.parametrize("content", STATUS_CASES.values(), ids=STATUS_CASES)
def test_damaged_status_of_a_finished_run_is_rewritten_from_the_checkpoint(nbs_env, reference_run, tmp_path,
                                                                             content):
    out = copy_run(reference_run, tmp_path)
    rd = out / RUN_NAME
    (rd / "status.json").write_bytes(content)
    before = {k: v for k, v in snapshot(rd).items() if k != "status.json"}
    proc = nbs_call(nbs_env, *RUN_ARGS, "--out", out)
    assert proc.returncode == 0 and proc.stderr == "", proc.stdout + proc.stderr
    assert f"repaired {rd / 'status.json'}" in proc.stdout and "as finished after epoch 3" in proc.stdout
    assert _status(rd)["state"] == "finished" and _status(rd)["epochs_done"] == 3
    assert {k: v for k, v in snapshot(rd).items() if k != "status.json"} == before


def test_damaged_status_of_an_interrupted_run_is_repaired_and_the_run_resumes_identically(
        nbs_env, interrupted_run, reference_run, tmp_path):
    out = copy_run(interrupted_run, tmp_path)
    rd = out / RUN_NAME
    assert _status(rd) | {"updated": 0} == {"state": "running", "epochs_done": 2, "message": "", "updated": 0}
    (rd / "status.json").write_text("[]")
    proc = nbs_call(nbs_env, *RUN_ARGS, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "as running after epoch 2" in proc.stdout and "resuming after epoch 2/3" in proc.stdout
    assert _status(rd)["state"] == "finished"
    pd.testing.assert_frame_equal(comparable(read_records(rd)), comparable(read_records(reference_run)),
                                  check_exact=True)


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[:300])


def _garbage(p: Path) -> None:
    p.write_bytes(b"not a parquet file")


def _other_epoch(p: Path) -> None:
    p.write_bytes((p.parent / "epoch-0001.parquet").read_bytes())


def _missing(p: Path) -> None:
    p.unlink()


DAMAGE = {"truncated": (_truncate, "truncated or overwritten"), "garbage": (_garbage, "not a Parquet file"),
          "other-epoch": (_other_epoch, "holds epoch 1, not 2"), "missing": (_missing, "is missing")}


@pytest.mark.parametrize("damage,says", DAMAGE.values(), ids=DAMAGE)
def test_nbs_run_names_a_damaged_record_of_a_finished_run_and_changes_nothing(nbs_env, reference_run, tmp_path,
                                                                              damage, says):
    out = copy_run(reference_run, tmp_path)
    rd = out / RUN_NAME
    damage(rd / "records" / "epoch-0002.parquet")
    before = snapshot(rd)
    proc = nbs_call(nbs_env, *RUN_ARGS, "--out", out)
    assert_one_line_error(proc, "epoch-0002.parquet", says, "cannot be re-derived", "another --out")
    assert snapshot(rd) == before


@pytest.mark.parametrize("status", [None, b"[]"], ids=["status-ok", "status-damaged"])
def test_nbs_run_names_a_damaged_record_before_resuming_and_changes_nothing(nbs_env, interrupted_run, tmp_path,
                                                                            status):
    out = copy_run(interrupted_run, tmp_path)
    rd = out / RUN_NAME
    _truncate(rd / "records" / "epoch-0001.parquet")
    if status is not None:
        (rd / "status.json").write_bytes(status)
    before = snapshot(rd)
    proc = nbs_call(nbs_env, *RUN_ARGS, "--out", out)
    assert_one_line_error(proc, "epoch-0001.parquet", "damaged", "cannot be re-derived")
    assert snapshot(rd) == before


def test_report_and_plot_name_damaged_files_on_stderr(nbs_env, reference_run, tmp_path):
    runs = copy_run(reference_run, tmp_path / "runs")
    rd = runs / RUN_NAME
    _garbage(rd / "records" / "epoch-0002.parquet")
    (rd / "status.json").write_text('{"state": 5}')
    before = snapshot(rd)

    report = nbs_call(nbs_env, "report", runs, "--out", tmp_path / "report", "--format", "png")
    plot = nbs_call(nbs_env, "plot", "collapse", runs, "--out", tmp_path / "collapse.png")
    for proc in (report, plot):
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert lines and all(line.startswith("nbs: warning: ") for line in lines), proc.stderr
        assert any("epoch-0002.parquet" in line and "epoch 2" in line and "left out" in line for line in lines)
        assert any("status.json" in line and "damaged" in line for line in lines)
    page = (tmp_path / "report" / "index.html").read_text()
    assert "epoch-0002.parquet" in page and "damaged" in page
    assert (tmp_path / "collapse.png").stat().st_size > 0
    assert snapshot(rd) == before  # reading never writes to a run


def _rewrite_records(run_dir: Path, column: str, value) -> None:
    """Every record of the run with ``column`` set to ``value`` (a file that is readable, of the wrong kind)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for f in sorted((run_dir / "records").glob("epoch-*.parquet")):
        table = pq.read_table(f).to_pydict()
        table[column] = [value]
        pq.write_table(pa.Table.from_pydict(table), f)


WRONG_KINDS = {"seed-text": ("seed", "one", "seed 'one' (a str) where nbs writes a whole number"),
               "seed-digits": ("seed", "0", "seed '0' (a str)"),
               "alpha-text": ("op_weights", "[0.2, 0.2, 0.2, 0.2, 0.2]", "op_weights '[0.2, 0.2"),
               "epoch-seconds-inf": ("epoch_seconds", float("inf"), "epoch_seconds inf"),
               "wall-seconds-negative": ("wall_seconds", -5.0, "wall_seconds -5.0")}


@pytest.mark.parametrize("column,value,says", WRONG_KINDS.values(), ids=WRONG_KINDS)
def test_a_run_whose_records_hold_the_wrong_kind_is_left_out_of_report_and_plot_in_one_line(
        cli, reference_run, tmp_path, column, value, says):
    """One such run used to break `nbs report` and `nbs plot alphas` for every run beside it."""
    runs = tmp_path / "runs"
    copy_run(reference_run, runs / "sound")
    bad = copy_run(reference_run, runs / "edited") / RUN_NAME
    _rewrite_records(bad, column, value)
    before = snapshot(runs)

    report = cli("report", str(runs), "--out", str(tmp_path / "report"), "--format", "png")
    plot = cli("plot", "alphas", str(runs), "--out", str(tmp_path / "alphas.png"))
    for proc in (report, plot):
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nbs: warning: record "), proc.stderr
        assert f"{bad / 'records'}/epoch-0001.parquet holds {says}" in lines[0]
        assert lines[0].endswith(f"{bad} is left out")
    assert (tmp_path / "alphas.png").stat().st_size > 0
    assert "is left out" in (tmp_path / "report" / "index.html").read_text()   # the page lists it too
    with pytest.warns(UserWarning, match="is left out"):
        df = load_runs(runs)
    assert set(df["run_dir"]) == {str((runs / "sound" / RUN_NAME).resolve())}
    assert snapshot(runs) == before  # reading never writes to a run
