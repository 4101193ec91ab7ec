"""Importers for the official benchmark files users download: NAS-Bench-201 and NATS-Bench topology.

Both packages keep, per cell and per ``hp`` (12 or 200 epochs), an ``ArchResults`` whose
``get_metrics(dataset, setname, is_random=False)`` is the official seed mean; ``get_more_info`` is
a thin wrapper over it that picks the set names listed in ``columns.OFFICIAL_SETNAMES``. The
importers call ``get_metrics`` directly with those names, once per (cell, hp, column), so both
files go through one code path and yield the same columns, all exact.

* NAS-Bench-201 (``NAS-Bench-201-v1_0-e61699.pth``, ``-v1_1-096897.pth``): a ``torch.save``'d dict
  with ``meta_archs`` (15,625 arch strings in index order), ``arch2infos`` (index -> ``{'less':
  hp=12, 'full': hp=200}`` ArchResults state dicts), ``evaluated_indexes`` and ``total_archs``.
  It is loaded here rather than through ``NASBench201API(path)`` because that constructor calls
  ``torch.load`` without ``weights_only=False`` (the default turned True in torch 2.6, which may
  reject objects pickled in 2020), and its dict form deep-copies tens of GB. Each cell is rebuilt with the package's own
  ``ArchResults.create_from_state_dict`` (what the constructor does) and freed once read.
  Its records are the package's own classes, so it must be fully unpickled (``weights_only=False``),
  which can run code: it is read only from the path the user names (``--nb201-pth``), so only
  import files from the official source.
* NATS-Bench topology: the ``NATS-tss-v1_0-3ffb9-simple`` directory (``meta.pickle.pbz2`` plus one
  ``{index:06d}.pickle.pbz2`` per cell, read with ``fast_mode=True``) or a single
  ``.pickle.pbz2`` file (``fast_mode=False``), through ``nats_bench.create(path, 'tss', ...)`` and
  ``query_meta_info_by_index(i, hp)``.

A column that the file holds for no cell (e.g. hp=12 on CIFAR-100 in NB201 v1.0) is not returned,
so the builder keeps the offline column for it. Both packages are imported only here, on demand.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import MissingFileError, NbsError
from .columns import (
    COST_COLUMNS,
    COST_DATASET,
    EPOCHS,
    FLOPS_COLUMN,
    OFFICIAL_SETNAMES,
    PARAMS_COLUMN,
    accuracy_column,
    accuracy_spec,
    cost_spec,
)
from .sources import SourceColumns, one_line, reading, require

Progress = Callable[[int, int], None]
"""Called as ``progress(cells_done, cells_total)`` while an importer walks a file."""

_NB201_HP_KEYS = {"12": "less", "200": "full"}
_NATS_CELL_FILE = re.compile(r"(\d+)\.pickle\.pbz2")


@dataclass
class OfficialData:
    """Arch strings in the file's index order, and the columns it provides."""

    archs: list[str]
    columns: SourceColumns


def read_nb201_pth(path: Path, progress: Progress | None = None) -> OfficialData:
    """Every exact column a NAS-Bench-201 ``.pth`` holds (hp=12 and hp=200), plus CIFAR-10 costs."""
    nb201 = _import_official("nas_201_api", "nas-bench-201")
    import torch

    path = require(Path(path), "NAS-Bench-201 file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a readable .pth"
        raise NbsError(f"cannot read NAS-Bench-201 file {path}: {one_line(err)}") from err
    if not isinstance(data, dict) or any(k not in data for k in ("meta_archs", "arch2infos")):
        raise NbsError(f"{path} is not a NAS-Bench-201 file (no 'meta_archs'/'arch2infos')")
    infos: dict[int, dict[str, Any]] = data["arch2infos"]

    def cells() -> Iterator[tuple[int, dict[str, Any]]]:
        for index in sorted(infos):
            entry = infos.pop(index)  # free each cell once read: the file is tens of GB in memory
            yield int(index), {
                hp: nb201.ArchResults.create_from_state_dict(entry[key])
                for hp, key in _NB201_HP_KEYS.items()
                if key in entry
            }

    source = f"NAS-Bench-201 official file ({path.name})"
    with reading(path, "NAS-Bench-201 file"):  # wrong-typed content: one line, not a traceback
        archs = [str(a) for a in data["meta_archs"]]
        return OfficialData(archs, _collect(len(archs), cells(), len(infos), source, progress))


def read_nats_topology(path: Path, progress: Progress | None = None) -> OfficialData:
    """Every exact column of a NATS-Bench topology archive directory or single ``.pickle.pbz2``."""
    nats_bench = _import_official("nats_bench", "nats_bench")
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"missing NATS-Bench topology data: {path}")
    fast = path.is_dir()
    try:
        api = nats_bench.create(str(path), "tss", fast_mode=fast, verbose=False)
    except Exception as err:  # noqa: BLE001 - the package raises bare ValueError/KeyError/OSError
        raise NbsError(f"cannot read NATS-Bench topology data {path}: {one_line(err)}") from err
    if fast:
        indices = sorted(int(m[1]) for p in path.iterdir() if (m := _NATS_CELL_FILE.fullmatch(p.name)))
    else:
        indices = sorted(api.evaluated_indexes)

    def cells() -> Iterator[tuple[int, dict[str, Any]]]:
        for index in indices:
            by_hp = {}
            for hp in map(str, EPOCHS):
                try:
                    by_hp[hp] = api.query_meta_info_by_index(index, hp=hp)
                except ValueError:  # this cell has no record for this hp
                    pass
            api.arch2infos_dict.pop(index, None)  # the API caches every cell it reads
            yield index, by_hp

    source = f"NATS-Bench topology official data ({path.name})"
    with reading(path, "NATS-Bench topology data"):
        archs = [str(a) for a in api.meta_archs]
        return OfficialData(archs, _collect(len(archs), cells(), len(indices), source, progress))


def _collect(
    num_cells: int,
    cells: Iterator[tuple[int, dict[str, Any]]],
    total: int,
    source: str,
    progress: Progress | None,
) -> SourceColumns:
    """Walk ``(index, {hp: ArchResults})`` once, filling every column the records support."""
    values = {name: np.full(num_cells, np.nan) for name in COST_COLUMNS}
    for ep in EPOCHS:
        for ds, split in OFFICIAL_SETNAMES:
            values[accuracy_column(ds, split, ep)] = np.full(num_cells, np.nan)
    for done, (index, by_hp) in enumerate(cells, start=1):
        if not 0 <= index < num_cells:
            raise NbsError(f"{source}: cell index {index} outside 0..{num_cells - 1}")
        for hp, result in by_hp.items():
            for (ds, split), setname in OFFICIAL_SETNAMES.items():
                try:
                    metrics = result.get_metrics(ds, setname, iepoch=None, is_random=False)
                except KeyError:  # dataset or eval set not recorded for this cell/hp
                    continue
                values[accuracy_column(ds, split, int(hp))][index] = metrics["accuracy"]
        cost_record = by_hp.get("200") or next(iter(by_hp.values()), None)
        if cost_record is not None:
            try:
                costs = cost_record.get_compute_costs(COST_DATASET)
                values[PARAMS_COLUMN][index] = costs["params"]
                values[FLOPS_COLUMN][index] = costs["flops"]
            except KeyError:
                pass
        if progress is not None:
            progress(done, total)
    columns = SourceColumns()
    for name, column in values.items():
        covered = int(np.isfinite(column).sum())
        if covered == 0:
            continue
        coverage = "" if covered == num_cells else f"; {covered:,} of {num_cells:,} cells in this file"
        if name in COST_COLUMNS:
            spec = cost_spec(name, exact=True, source=source, note=f"CIFAR-10 network, official cost record{coverage}")
        else:
            spec = accuracy_spec(name, exact=True, source=source, note=f"official seed mean{coverage}")
        columns.add(spec, column)
    return columns


def _import_official(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise NbsError(f"reading official files needs the {package!r} package: pip install {package}") from err
