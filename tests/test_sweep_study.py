"""`nbs sweep`'s study files and --dry-run, without running anything: the grid a file expands to, the
directory each run gets, and every mistake in a file as one line naming the file and the key."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from conftest import Outcome
from nasbench_stability.errors import ConfigError
from nasbench_stability.sweep.expand import MAX_FOLDER, _folder, expand, unit_count, work_units
from nasbench_stability.sweep.ray_executor import RAY_MISSING
from nasbench_stability.sweep.study import MAX_RUNS, load_study

GRID_STUDY = """
name = "grid"
preset = "smoke"
device = "cpu"
seeds = [3, 1]

[set]
data_subset = 16
batch_size = 8
w_lr = [0.025, 0.05]

[methods.darts-v1]
mode = ["bilevel", "single-level"]

[methods.single-darts]
w_lr = 0.1
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_one_line(outcome, *needles: str) -> None:
    assert outcome.returncode == 2, (outcome.returncode, outcome.stdout, outcome.stderr)
    err = outcome.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nbs: error:") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_dry_run_prints_the_grid_in_file_order_and_runs_nothing(cli, tmp_path):
    study = write(tmp_path, GRID_STUDY)
    out = tmp_path / "out"
    result = cli("sweep", str(study), "--out", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr
    header, *lines, cost = result.stdout.strip().splitlines()
    # darts-v1: lr × mode × seeds = 2 × 2 × 2; single-darts: its own lr replaces [set]'s axis, × 2 seeds
    assert header == f"grid: 10 runs in 10 work units under {out}"
    assert cost.startswith("expected wall time ≈ ") and "10 runs, 20 epochs" in cost   # smoke: 2 epochs each
    assert len(lines) == 10 and not out.exists()
    dirs = [Path(line.split()[0]) for line in lines]
    assert len(set(dirs)) == 10
    common = "batch_size=8,data_subset=16"
    assert dirs[:4] == [out / f"{common}/darts-v1-cifar10-seed3", out / f"{common}/darts-v1-cifar10-seed1",
                        out / f"{common},mode=single-level/darts-v1-cifar10-seed3",
                        out / f"{common},mode=single-level/darts-v1-cifar10-seed1"]
    # w_lr=0.025 is darts-v1's default: only w_lr=0.05 is named
    assert dirs[4] == out / f"{common},w_lr=0.05/darts-v1-cifar10-seed3"
    assert dirs[-1] == out / f"{common},w_lr=0.1/single-darts-cifar10-seed1"
    assert lines[-1].split()[1:] == ["single-darts", "cifar10", "seed=1", "batch_size=8", "data_subset=16", "w_lr=0.1"]


def test_each_run_config_carries_its_grid_point(tmp_path):
    planned = expand(load_study(write(tmp_path, GRID_STUDY)), tmp_path / "out")
    darts = [p.config for p in planned if p.config.method == "darts-v1"]
    points = {(dict(c.method_options)["w_lr"], dict(c.method_options)["mode"], c.seed) for c in darts}
    assert points == {(lr, mode, s) for lr in (0.025, 0.05) for mode in ("bilevel", "single-level") for s in (3, 1)}
    assert all(c.data_subset == 16 and c.batch_size == 8 and c.preset == "smoke" and c.epochs == 2 for c in darts)
    assert {dict(p.config.method_options)["w_lr"] for p in planned if p.config.method == "single-darts"} == {0.1}
    # on a CPU seeds run solo: one unit per run; asked to pack, the seeds of a grid point are one unit
    assert len(work_units(planned, None)) == 10
    packed = work_units(planned, True)
    assert sorted(len(u.runs) for u in packed) == [2] * 5
    assert all(len({r.config.seed for r in u.runs}) == 2 and len({r.out for r in u.runs}) == 1 for u in packed)


def test_a_methods_list_and_a_seed_count(cli, tmp_path):
    study = write(tmp_path, 'methods = ["darts-v1", "single-darts"]\nseeds = 2\npreset = "smoke"\ndevice = "cpu"\n'
                            'datasets = ["cifar10", "cifar100"]\n')
    result = cli("sweep", str(study), "--out", str(tmp_path / "o"), "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()[1:-1]
    # no setting differs from the defaults: the engine's run directories straight under --out
    assert [line.split()[0] for line in lines] == [
        str(tmp_path / "o" / f"{m}-{d}-seed{s}") for m in ("darts-v1", "single-darts")
        for d in ("cifar10", "cifar100") for s in (0, 1)]
    assert all(line.endswith("(defaults)") for line in lines)


def test_default_out_is_named_after_the_study(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, 'methods = ["darts-v1"]\npreset = "smoke"\ndevice = "cpu"\n', "my-study.toml")
    result = cli("sweep", "my-study.toml", "--dry-run")
    # made absolute in the driver (where the user is), as every run directory a worker is given
    assert result.stdout.splitlines()[1].split()[0] == str(Path.cwd() / "sweeps/my-study/darts-v1-cifar10-seed0")


def test_every_path_a_worker_gets_is_absolute(tmp_path, monkeypatch, bench_path, cifar_root, nbs_home):
    """--out, the table, the dataset and NBS_HOME, given relative to the user's folder, reach the work units
    and their environment as absolute paths: a Ray task on another node resolves nothing in its own folder."""
    from nasbench_stability.sweep.runner import prepare_environment

    monkeypatch.chdir(tmp_path)
    for name, target in (("table.parquet", bench_path), ("cifar", cifar_root), ("home", nbs_home)):
        (tmp_path / name).symlink_to(target)
    monkeypatch.setenv("NBS_HOME", "home")
    study = load_study(write(tmp_path, GRID_STUDY))
    planned = expand(study, Path("rel/out"))
    assert {p.out.parent if p.settings else p.out for p in planned} == {tmp_path / "rel" / "out"}
    assert all(p.run_dir.is_absolute() for p in planned)
    assert all(r.out.is_absolute() for u in work_units(planned, True) for r in u.runs)
    env = prepare_environment(study, planned, Path("table.parquet"), Path("cifar"), quiet=True)
    assert env.benchmark_path.is_absolute() and env.nbs_home.is_absolute()
    assert env.data_root("cifar10") is not None and env.data_root("cifar10").is_absolute()


def test_long_or_unsafe_settings_get_a_short_unique_folder():
    values = [f"{'x' * 150}{c}" for c in "/?"]   # differ only in a character a folder name cannot hold
    names = [_folder((("a", v),)) for v in values]
    assert names[0] != names[1]
    assert all(len(n) <= MAX_FOLDER and "/" not in n and "?" not in n for n in names)
    assert _folder((("lr", "0.05"), ("mode", "single-level"))) == "lr=0.05,mode=single-level"


BAD_STUDIES = [
    ('methods = ["darts-v1"]\nseed = 3\n', "seed: unknown key"),
    ('methods = ["darts-v1"]\nseeds = "two"\n', "seeds: expected a count or a non-empty list"),
    ('methods = ["darts-v1"]\nseeds = [1, 1]\n', "seeds: 1 is listed twice"),
    ('methods = ["darts-v1"]\nseeds = 0\n', "seeds: a count must be between 1"),
    ('methods = ["darts-v1"]\nseeds = [-1]\n', "seeds: "),
    ('seeds = 2\n', "methods: missing"),
    ('methods = ["no-such-method"]\n', "methods.no-such-method: unknown method 'no-such-method'"),
    ('methods = ["darts-v1"]\npreset = "huge"\n', "preset: unknown preset 'huge'"),
    ('methods = ["darts-v1"]\npreset = 3\n', "preset: expected a string, got integer 3"),
    ('methods = ["darts-v1"]\ndatasets = ["mnist"]\n', "datasets: unknown dataset 'mnist'"),
    ('methods = ["darts-v1"]\ndevice = "tpu"\n', "device: unknown device 'tpu'"),
    ('methods = ["darts-v1"]\nepochs = 0\n', "epochs: "),
    ('methods = ["darts-v1"]\npack = "yes"\n', "pack: expected true or false"),
    ('[methods.darts-v1]\nno_such_option = 1\n', "methods.darts-v1.no_such_option: unknown --set key"),
    ('[methods.darts-v1]\nw_lr = [0.1, -1.0]\n', "methods.darts-v1.w_lr: "),
    ('[methods.darts-v1]\nmode = []\n', "methods.darts-v1.mode: an empty list leaves no runs"),
    ('[methods.darts-v1]\nmode = [["bilevel"]]\n', "methods.darts-v1.mode: a value must be a string"),
    ('[methods.darts-v1]\nw_lr = [0.1, 0.10]\n', "methods.darts-v1.w_lr: '0.1' is listed twice"),
    ('methods = ["darts-v1", "rs"]\n[set]\nmax_queries = 10\n', "set.max_queries: unknown --set key 'max_queries'"),
    # two keys rs does not take: the method is named, the message names the first key
    ('methods = ["rs"]\n[set]\ndata_subset = 16\nbatch_size = 8\n', "methods.rs: unknown --set key 'batch_size'"),
    ('methods = ["darts-v1"]\n[set]\ndata_subset = 16\n', "batch_size=64 is larger than data_subset=16"),
    ('methods = ["darts-v1"]\n[set]\nbatch_size = [8, 64]\ndata_subset = 16\n',
     "set.batch_size: batch_size=64 is larger than data_subset=16 (examples per half): an epoch would have no "
     "full batch (for darts-v1)"),
    ('methods = "darts-v1"\n', "methods: expected a list of names"),
    # pack = true asks every method to pack: one that cannot is named with the file and key
    ('methods = ["darts-v1", "rs"]\npack = true\n', "pack: rs does not pack: a table search"),
    ('methods = ["darts-v1"]\nseeds = 2\nseeds = 3\n', "is not valid TOML"),
    ('methods = ["darts-v1"\n', "is not valid TOML"),
]


@pytest.mark.parametrize("text, needle", BAD_STUDIES, ids=[n for _, n in BAD_STUDIES])
def test_a_bad_study_file_is_one_line_naming_file_and_key(cli, tmp_path, text, needle):
    study = write(tmp_path, text)
    out = tmp_path / "out"
    assert_one_line(cli("sweep", str(study), "--out", str(out)), f"{study}", needle)
    assert not out.exists()


def test_a_missing_or_unreadable_study_file(cli, tmp_path):
    assert_one_line(cli("sweep", str(tmp_path / "nope.toml")), f"study file {tmp_path / 'nope.toml'} does not exist")
    assert_one_line(cli("sweep", str(tmp_path)), "is a folder")
    (tmp_path / "bin.toml").write_bytes(b"\xff\xfe methods")
    assert_one_line(cli("sweep", str(tmp_path / "bin.toml")), "cannot read study file")


def test_executor_options_of_the_other_executor_are_refused(cli, tmp_path):
    study = write(tmp_path, 'methods = ["darts-v1"]\n')
    assert_one_line(cli("sweep", str(study), "--address", "127.0.0.1:1"), "--address is for --executor ray")
    assert_one_line(cli("sweep", str(study), "--max-retries", "2"), "--max-retries is for --executor ray")
    assert_one_line(cli("sweep", str(study), "--jobs", "0"), "--jobs must be at least 1")
    assert_one_line(cli("sweep", str(study), "--executor", "ray", "--cpus-per-task", "0"),
                    "--cpus-per-task must be a number of at least 0.01, got 0")
    assert_one_line(cli("sweep", str(study), "--executor", "ray", "--jobs", "2"), "--jobs is for --executor local")


def test_ray_not_installed_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)   # `import ray` raises ImportError
    study = write(tmp_path, 'methods = ["darts-v1"]\npreset = "smoke"\ndevice = "cpu"\n')
    out = tmp_path / "out"
    result = cli("sweep", str(study), "--executor", "ray", "--out", str(out))
    assert_one_line(result, RAY_MISSING)
    assert not out.exists()


def test_an_unreachable_ray_address_is_one_line_before_any_run(cli, tmp_path):
    import socket

    with socket.socket() as s:   # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    study = write(tmp_path, 'methods = ["darts-v1"]\npreset = "smoke"\ndevice = "cpu"\n'
                            '[set]\ndata_subset = 16\nbatch_size = 8\n')
    out = tmp_path / "out"
    result = cli("sweep", str(study), "--executor", "ray", "--address", f"127.0.0.1:{port}", "--out", str(out))
    assert_one_line(result, f"cannot reach the Ray cluster at 127.0.0.1:{port}")
    assert not list(out.rglob("config.json"))


def test_load_study_types(tmp_path):
    study = load_study(write(tmp_path, GRID_STUDY))
    assert study.name == "grid" and study.seeds == (3, 1) and study.datasets == ("cifar10",)
    assert [m.name for m in study.methods] == ["darts-v1", "single-darts"]
    assert study.method_grid(study.methods[1]) == (("data_subset", ("16",)), ("batch_size", ("8",)),
                                                   ("w_lr", ("0.1",)))
    with pytest.raises(ConfigError):
        load_study(write(tmp_path, "name = '../x'\nmethods = ['darts-v1']\n"))


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parent.parent / "examples").glob("*.toml")))
def test_the_example_study_files_expand(name, tmp_path):
    """The study files the README and the committed reports name still load and expand (a renamed option fails here)."""
    study = load_study(Path(__file__).parent.parent / "examples" / name)
    runs = expand(study, tmp_path)
    points = {m.name: math.prod(len(values) for _, values in study.method_grid(m)) for m in study.methods}
    expected = sum(len(study.method_seeds(m)) * points[m.name] for m in study.methods) * len(study.datasets)
    assert len(runs) == expected and not any(tmp_path.iterdir())


def test_the_rdarts_grid_is_the_authors_script_s():
    """automl/RobustDARTS scripts/start_search.sh: weight decay 3e-4·3^k for k = 0..4 (its awk loop's five values);
    drop path 0, 0.2, 0.4 and the paper's 0.6; a single run's defaults are points of the grid."""
    from nasbench_stability.methods.registry import get_method
    study = load_study(Path(__file__).parent.parent / "examples" / "study-rdarts-grid.toml")
    grids = {m.name: dict(study.method_grid(m)) for m in study.methods}
    wd = [float(v) for v in grids["rdarts-l2"]["w_weight_decay"]]
    assert wd == pytest.approx([3e-4 * 3 ** k for k in range(5)])
    assert [float(v) for v in grids["rdarts-dp"]["drop_path_max"]] == [0.0, 0.2, 0.4, 0.6]
    assert get_method("rdarts-l2").default_options().w_weight_decay in wd
    assert get_method("rdarts-dp").default_options().drop_path_max in [0.0, 0.2, 0.4, 0.6]


def test_a_method_may_have_its_own_seeds_and_units_go_seed_by_seed(tmp_path):
    study = load_study(write(tmp_path, 'preset = "smoke"\ndevice = "cpu"\nseeds = 3\n[methods.darts-v1]\n'
                                       '[methods.darts-v2]\nseeds = [7, 0]\n[methods.single-darts]\nseeds = 1\n'))
    planned = expand(study, tmp_path / "out")
    assert [(p.config.method, p.config.seed) for p in planned] == [
        ("darts-v1", 0), ("darts-v1", 1), ("darts-v1", 2), ("darts-v2", 7), ("darts-v2", 0), ("single-darts", 0)]
    # a study stopped part-way has every method's first seeds, not all seeds of the first method
    order = [(u.runs[0].config.method, u.runs[0].config.seed) for u in work_units(planned, None)]
    assert order == [("darts-v1", 0), ("darts-v2", 7), ("single-darts", 0), ("darts-v1", 1), ("darts-v2", 0),
                     ("darts-v1", 2)]
    packed = work_units(planned, True)   # a packed grid point stays one unit, whatever the order
    assert [len(u.runs) for u in packed] == [3, 2, 1]


@pytest.mark.parametrize("seeds, needle", [("0", "methods.darts-v2.seeds: a count must be between 1"),
                                           ("[1, 1]", "methods.darts-v2.seeds: 1 is listed twice"),
                                           ('"x"', "methods.darts-v2.seeds: expected a count or a non-empty list")])
def test_a_bad_method_seeds_is_one_line(cli, tmp_path, seeds, needle):
    study = write(tmp_path, f'preset = "smoke"\ndevice = "cpu"\n[methods.darts-v2]\nseeds = {seeds}\n')
    assert_one_line(cli("sweep", str(study), "--dry-run"), needle)


# ---- bounded grids --------------------------------------------------------------------------------
def _axis(n: int, step: float) -> str:
    return "[" + ", ".join(repr(round((i + 1) * step, 6)) for i in range(n)) + "]"


def test_a_grid_past_the_cap_is_refused_with_its_size_before_it_is_expanded(cli, tmp_path, monkeypatch):
    # three axes of 100 values: a million runs (minutes and GBs to expand before the cap)
    study = write(tmp_path, f'preset = "smoke"\ndevice = "cpu"\n[set]\nw_lr = {_axis(100, 0.001)}\n'
                            f'a_lr = {_axis(100, 0.0001)}\nw_momentum = {_axis(100, 0.005)}\n[methods.darts-v1]\n')
    import nasbench_stability.sweep.study as study_module

    def no_config(*args, **kw):
        raise AssertionError("a config was resolved: the grid was being expanded")

    monkeypatch.setattr(study_module, "resolve_config", no_config)
    result = cli("sweep", str(study), "--dry-run")
    assert_one_line(result, str(study), "methods.darts-v1: the study expands to 1,000,000 runs, more than the "
                    f"{MAX_RUNS:,} a study may have", "100 × 100 × 100 grid points × 1 seed × 1 dataset")
    assert result.stdout == ""


def test_the_cap_counts_seeds_datasets_and_every_method(tmp_path):
    at_cap = load_study(write(tmp_path, f'methods = ["darts-v1"]\nseeds = {MAX_RUNS}\n'))
    assert at_cap.run_count() == MAX_RUNS
    with pytest.raises(ConfigError, match=f"expands to {2 * MAX_RUNS:,} runs"):
        load_study(write(tmp_path, f'methods = ["darts-v1"]\nseeds = {MAX_RUNS}\ndatasets = ["cifar10", "cifar100"]\n'))
    with pytest.raises(ConfigError, match=f"expands to {MAX_RUNS + 1:,} runs.*darts-v1: 1 grid points × {MAX_RUNS} "):
        load_study(write(tmp_path, f'seeds = {MAX_RUNS}\n[methods.darts-v1]\n[methods.darts-v2]\nseeds = 1\n'))


def test_dry_run_streams_its_lines(cli, tmp_path, monkeypatch):
    """Each line is printed as its run is expanded, not after the whole grid: when the first line is written
    only a few configs have been resolved (the counts in the header come from the axes)."""
    import nasbench_stability.sweep.expand as expand_module

    resolved = []
    seen_at_first_line = []
    real_config, real_describe = expand_module._config, expand_module.PlannedRun.describe

    def counting_config(*args):
        resolved.append(args)
        return real_config(*args)

    def noting_describe(self):
        if not seen_at_first_line:
            seen_at_first_line.append(len(resolved))
        return real_describe(self)

    monkeypatch.setattr(expand_module, "_config", counting_config)
    monkeypatch.setattr(expand_module.PlannedRun, "describe", noting_describe)
    study = write(tmp_path, f'preset = "smoke"\ndevice = "cpu"\nseeds = 4\n[set]\nw_lr = {_axis(20, 0.001)}\n'
                            f'a_lr = {_axis(10, 0.0001)}\n[methods.darts-v1]\n')
    result = cli("sweep", str(study), "--out", str(tmp_path / "o"), "--dry-run")
    assert result.returncode == 0, result.stderr
    header, *lines, cost = result.stdout.strip().splitlines()
    assert header == f"study: 800 runs in 800 work units under {tmp_path / 'o'}" and len(lines) == 800
    assert "800 runs" in cost
    assert seen_at_first_line and seen_at_first_line[0] <= 3, seen_at_first_line   # not 1,001: all of them
    assert len(resolved) == 1 + 200 + 800   # the unit count, each grid point's defaults, each run


def test_unit_count_matches_the_work_units(tmp_path):
    study = load_study(write(tmp_path, GRID_STUDY))
    assert unit_count(study) == len(work_units(expand(study, tmp_path), study.pack)) == 10
    packed = load_study(write(tmp_path, GRID_STUDY.replace("seeds = [3, 1]", "seeds = [3, 1]\npack = true")))
    assert unit_count(packed) == len(work_units(expand(packed, tmp_path), packed.pack)) == 5


# ---- the destination --------------------------------------------------------------------------------
def test_an_unwritable_out_is_one_line_before_any_data_is_prepared(tmp_path):
    """/proc takes no files: one line and exit 2 before the table is built or a dataset decoded (the table
    and dataset named here do not exist, NBS_HOME is empty: each would be another message, or work)."""
    from click.testing import CliRunner

    from nasbench_stability.cli.main import main

    study = write(tmp_path, 'preset = "smoke"\ndevice = "cpu"\nmethods = ["darts-v1"]\n'
                            '[set]\ndata_subset = 16\nbatch_size = 8\n')
    home = tmp_path / "home"
    env = {"NBS_HOME": str(home), "NBS_BENCHMARK": str(tmp_path / "no-table.parquet"),
           "NBS_DATA": str(tmp_path / "no-data")}
    result = CliRunner().invoke(main, ["sweep", str(study), "--out", "/proc/nbs-sweep-test"], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert_one_line(Outcome(result.exit_code, result.stdout, result.stderr),
                    "cannot write --out folder /proc/nbs-sweep-test")
    assert not home.exists() and not (tmp_path / "no-table.parquet").exists()


def test_a_read_only_out_is_one_line_and_nothing_is_written(nbs_env, tmp_path):
    from files_helpers import nbs_call, read_only, snapshot

    study = write(tmp_path, 'preset = "smoke"\ndevice = "cpu"\nmethods = ["darts-v1"]\n'
                            '[set]\ndata_subset = 16\nbatch_size = 8\n')
    ro = tmp_path / "ro"
    (ro / "earlier").mkdir(parents=True)
    (ro / "earlier" / "kept.txt").write_text("an earlier result")
    before = snapshot(ro)
    with read_only(ro) as prefix:
        proc = nbs_call(nbs_env, "sweep", study, "--out", ro / "out", prefix=prefix)
    assert_one_line(proc, f"cannot write --out folder {ro / 'out'} (in {ro})")
    assert "expected wall time" not in proc.stdout   # refused before the cost line, the table and the data
    assert snapshot(ro) == before and not (ro / "out").exists()


def test_the_rerun_advice_is_the_command_as_given_quoted():
    """`re-run ...` after failures: the study file and each option given, in a shell-safe form; defaults stay
    out, --dry-run too (it runs nothing), both forms of an on/off flag come back as given."""
    import shlex

    from nasbench_stability.cli.sweep_command import _rerun_command, sweep

    args = ["my study.toml", "--no-cuda-graphs", "--out", "it's here", "--jobs", "2", "--log", "tensorboard",
            "--quiet", "--data-root", "/data/cifar $HOME"]
    ctx = sweep.make_context("sweep", list(args))
    line = _rerun_command(ctx)
    assert shlex.split(line) == ["nbs", "sweep", "my study.toml", "--out", "it's here", "--jobs", "2",
                                 "--data-root", "/data/cifar $HOME", "--no-cuda-graphs", "--log", "tensorboard",
                                 "--quiet"]
    assert "'$HOME'" not in line and "'/data/cifar $HOME'" in line   # quoted, not expanded by a shell
    assert _rerun_command(sweep.make_context("sweep", ["s.toml", "--cuda-graphs"])) == "nbs sweep s.toml --cuda-graphs"
    assert _rerun_command(sweep.make_context("sweep", ["s.toml"])) == "nbs sweep s.toml"
