"""`nbs status`: one line per run, read from the run directories; the lock tells a live run from a killed one."""

from __future__ import annotations

import fcntl
import json

import pandas as pd
import pytest

from files_helpers import copy_run
from nasbench_stability.cli import status_command
from nasbench_stability.engine.records import record_path
from nasbench_stability.engine.status import write_status


def _status(cli, *args: str):
    out = cli("status", *map(str, args))
    assert out.returncode == 0, out.stderr
    return out


def _json_rows(cli, *paths) -> dict[str, dict]:
    """`nbs status --json` keyed by run directory name."""
    rows = json.loads(_status(cli, *paths, "--json").stdout)
    return {r["run_dir"].rsplit("/", 1)[-1]: r for r in rows}


def _killed_after(run_dir, epoch: int) -> None:
    """What a kill after ``epoch`` leaves: its status still running, the later records not yet written."""
    for later in range(epoch + 1, 100):
        record_path(run_dir, later).unlink(missing_ok=True)
    write_status(run_dir, "running", epoch)


def test_status_of_a_finished_study_is_its_records(cli, study):
    rows = _json_rows(cli, study.runs)
    assert sorted(rows) == sorted(d.name for d in study.run_dirs())
    for run_dir in study.run_dirs():
        records = pd.read_parquet(run_dir / "records")
        last = records.sort_values("epoch").iloc[-1]
        row = rows[run_dir.name]
        assert (row["method"], row["seed"], row["dataset"]) == (last["method"], last["seed"], "cifar10")
        assert row["state"] == "finished"
        assert (row["epochs_done"], row["epochs"]) == (len(records), last["epochs"])
        assert row["genotype"] == last["genotype"]
        assert row["test_acc"] == pytest.approx(last["bench_cifar10_test_200"])
        assert row["seconds_per_epoch"] == pytest.approx(records["epoch_seconds"].sum() / len(records))
        assert row["eta_seconds"] is None   # nothing left to wait for

    text = _status(cli, study.runs).stdout.splitlines()
    assert text[0].split()[:5] == ["method", "dataset", "seed", "state", "epochs"]
    assert len(text) == 1 + len(rows)
    for run_dir in study.run_dirs():
        last = pd.read_parquet(run_dir / "records").sort_values("epoch").iloc[-1]
        line = next(t for t in text[1:] if t.startswith(f"{last['method']} ") and f" {last['seed']} " in t)
        assert f" finished  {last['epoch']}/{last['epochs']} " in line
        assert f"{last['bench_cifar10_test_200']:.2f}" in line and line.endswith(last["genotype"])


def test_a_killed_run_is_a_stale_lock_and_a_held_lock_is_running(cli, study, tmp_path):
    template = study.run_dirs()[0]
    run_dir = copy_run(template, tmp_path) / template.name   # copied without its .lock
    _killed_after(run_dir, 2)
    epoch2 = pd.read_parquet(record_path(run_dir, 2)).iloc[0]

    row = _json_rows(cli, tmp_path)[template.name]
    assert (row["state"], row["epochs_done"], row["epochs"]) == ("stale lock", 2, epoch2["epochs"])
    assert row["genotype"] == epoch2["genotype"]
    assert row["test_acc"] == pytest.approx(epoch2["bench_cifar10_test_200"])
    assert row["eta_seconds"] is None           # a killed run is not getting anywhere
    assert not (run_dir / ".lock").exists()     # the probe creates nothing

    with open(run_dir / ".lock", "w") as held:  # a live run: its process holds the lock
        fcntl.flock(held, fcntl.LOCK_EX)
        row = _json_rows(cli, tmp_path)[template.name]
        line = _status(cli, tmp_path).stdout.splitlines()[1]
        with open(run_dir / ".lock") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)   # the probes left the run's lock alone
    assert row["state"] == "running"
    per_epoch = epoch2["wall_seconds"] / 2
    assert row["seconds_per_epoch"] == pytest.approx(per_epoch)
    assert row["eta_seconds"] == pytest.approx((epoch2["epochs"] - 2) * per_epoch)
    assert f" running  2/{epoch2['epochs']} " in line and line.endswith(epoch2["genotype"])

    (run_dir / "status.json").write_text("{not json")
    row = _json_rows(cli, tmp_path)[template.name]
    assert (row["state"], row["epochs_done"]) == ("damaged status", 2)   # epochs from the records then


def test_a_damaged_last_record_shows_the_cell_before_it_with_a_warning(cli, study, tmp_path):
    template = study.run_dirs()[0]
    run_dir = copy_run(template, tmp_path) / template.name
    last = max(int(p.stem.split("-")[1]) for p in (run_dir / "records").glob("epoch-*.parquet"))
    record_path(run_dir, last).write_bytes(b"half a file")
    before = pd.read_parquet(record_path(run_dir, last - 1)).iloc[0]
    out = _status(cli, tmp_path, "--json")
    (row,) = json.loads(out.stdout)
    assert (row["state"], row["epochs_done"], row["genotype"]) == ("finished", last, before["genotype"])
    assert out.stderr.count("\n") == 1 and f"damaged record {record_path(run_dir, last)}" in out.stderr


@pytest.mark.parametrize("column,value", [("wall_seconds", float("inf")), ("epoch_seconds", float("inf")),
                                          ("wall_seconds", -1.0), ("seed", "one")])
def test_a_last_record_of_the_wrong_kind_is_passed_over_with_one_warning(cli, study, tmp_path, column, value):
    """An infinite time per epoch made the text table fail (a time left cannot be infinite days and hours)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    template = study.run_dirs()[0]
    run_dir = copy_run(template, tmp_path) / template.name
    last = max(int(p.stem.split("-")[1]) for p in (run_dir / "records").glob("epoch-*.parquet"))
    record = pq.read_table(record_path(run_dir, last)).to_pydict()
    record[column] = [value]
    pq.write_table(pa.Table.from_pydict(record), record_path(run_dir, last))
    before = pd.read_parquet(record_path(run_dir, last - 1)).iloc[0]
    for args in ([], ["--json"]):
        out = _status(cli, tmp_path, *args)
        assert out.stderr.count("\n") == 1 and f"record {record_path(run_dir, last)} holds {column} " in out.stderr
        assert "the status shows an older epoch's cell" in out.stderr
    (row,) = json.loads(out.stdout)
    assert (row["state"], row["epochs_done"], row["genotype"]) == ("finished", last, before["genotype"])
    assert row["seconds_per_epoch"] == pytest.approx(before["wall_seconds"] / before["epoch"])


def test_a_table_search_shows_the_records_its_own_budget_writes(cli, tmp_path):
    """A query budget below the checkpoints writes one record per query: 5 of them, not the default 20."""
    for queries, out in (("5", "small"), ("100", "default")):
        done = cli("run", "--method", "rs", "--out", str(tmp_path / out), "--quiet", "--set", f"max_queries={queries}")
        assert done.returncode == 0, done.stderr
    small = _json_rows(cli, tmp_path / "small")["rs-cifar10-seed0"]
    assert (small["state"], small["epochs_done"], small["epochs"]) == ("finished", 5, 5)
    assert " finished  5/5 " in _status(cli, tmp_path / "small").stdout
    # killed before its records were written: its options say how many it will write
    run_dir = tmp_path / "small" / "rs-cifar10-seed0"
    _killed_after(run_dir, 0)
    small = _json_rows(cli, tmp_path / "small")["rs-cifar10-seed0"]
    assert (small["state"], small["epochs_done"], small["epochs"]) == ("stale lock", 0, 5)
    default = _json_rows(cli, tmp_path / "default")["rs-cifar10-seed0"]
    assert (default["epochs_done"], default["epochs"]) == (20, 20)


def test_runs_in_several_folders_are_told_apart_by_their_folder(cli, study, tmp_path):
    """A sweep puts grid points in settings folders: the same method, dataset and seed twice needs the folder."""
    template = study.run_dirs()[0]
    for grid_point in ("w_lr=0.01", "w_lr=0.1"):
        copy_run(template, tmp_path / grid_point)
    text = _status(cli, tmp_path).stdout.splitlines()
    assert text[0].split()[-2:] == ["folder", "cell"] and len(text) == 3
    assert sorted(line.split()[-2] for line in text[1:]) == ["w_lr=0.01", "w_lr=0.1"]
    one_folder = _status(cli, tmp_path / "w_lr=0.1").stdout.splitlines()
    assert "folder" not in one_folder[0]


def test_watch_refreshes_until_ctrl_c(cli, study, tmp_path, monkeypatch):
    template = study.run_dirs()[0]
    run_dir = copy_run(template, tmp_path) / template.name
    _killed_after(run_dir, 1)
    pauses = []

    def sleep(seconds: float) -> None:   # the run moves on between refreshes; the second pause is Ctrl-C
        pauses.append(seconds)
        if len(pauses) == 2:
            raise KeyboardInterrupt
        write_status(run_dir, "finished", 1)

    monkeypatch.setattr(status_command.time, "sleep", sleep)
    out = _status(cli, tmp_path, "--watch", "--every", "2.5")
    assert pauses == [2.5, 2.5]
    epoch1 = pd.read_parquet(record_path(run_dir, 1)).iloc[0]
    frames = [line.split() for line in out.stdout.splitlines() if line.startswith(epoch1["method"] + " ")]
    assert [f[3:5] for f in frames] == [["stale", "lock"], ["finished", f"1/{epoch1['epochs']}"]]
    assert out.stdout.count("Ctrl-C to stop") == 2 and out.stderr == ""


def test_no_runs_is_one_line_and_exit_2(cli, tmp_path):
    out = cli("status", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "no nbs run directories" in out.stderr and str(tmp_path) in out.stderr
    out = cli("status", str(tmp_path / "missing"))
    assert out.returncode == 2 and "does not exist" in out.stderr
