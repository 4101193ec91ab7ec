"""`nbs sweep`'s study files and --dry-run, without running anything: the grid a file expands to, the
directory each run gets, and every mistake in a file as one line naming the file and the key."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from nasbench_stability.errors import ConfigError
from nasbench_stability.sweep.expand import MAX_FOLDER, _folder, expand, work_units
from nasbench_stability.sweep.ray_executor import RAY_MISSING
from nasbench_stability.sweep.study import load_study

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
    assert result.stdout.splitlines()[1].split()[0] == str(Path("sweeps/my-study/darts-v1-cifar10-seed0"))


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
                    "--cpus-per-task must be positive")
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
