"""Build the compact benchmark table once, from the offline files and/or the official ones.

The table has one row per cell in NB201 index order (0..15,624) with the cell's identities
(``index``, ``arch``, ``canonical_key``, ``naslib``, ``param_free_count``) and every metric column a
source provides. Sources are layered, later ones replacing earlier ones column by column:
offline files (NATS CSV, mini-bench pickle, NASLib zip, zc extras), then a NAS-Bench-201 ``.pth``,
then NATS-Bench topology data — the official files are exact, so they replace the approximate
columns, and NATS-Bench, NB201's maintained successor, has the last word when both are given.
Every source that carries an index order must agree with the others on every arch string.

The table is written as Parquet with the column specs (exactness, source, note) in the schema
metadata, so loading it needs neither the official packages nor the source files.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import paths
from ..destinations import check_writable, ensure_folder, writing
from ..errors import MissingFileError, NbsError
from ..space.genotype import Genotype
from . import locate, official, sources
from .columns import META_COLUMNS, META_VERSION, ROW_COLUMNS, TABLE_VERSION, ColumnSpec, sort_specs, specs_to_json
from .official import Progress
from .sources import NUM_CELLS, SourceColumns

SPECS_ATTR = "nbs_columns"  # DataFrame.attrs key carrying the ColumnSpecs from build to write


def build_table(
    nb201_dir: str | os.PathLike | None,
    *,
    nb201_pth: str | os.PathLike | None = None,
    nats_path: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """The benchmark table as a DataFrame; its column specs are in ``df.attrs[SPECS_ATTR]``.

    ``nb201_dir`` is a folder laid out like ``shared/nb201``; ``nb201_pth`` / ``nats_path`` are
    official files (slow: minutes and tens of GB for the real ones). At least one is needed.
    """
    archs: list[str] | None = None
    archs_from = ""
    layers: list[SourceColumns] = []
    expected_keys: list[str] | None = None
    if nb201_dir is not None:
        archs, expected_keys, layers = _read_offline(Path(nb201_dir))
        archs_from = str(nb201_dir)
    for reader, path in ((official.read_nb201_pth, nb201_pth), (official.read_nats_topology, nats_path)):
        if path is None:
            continue
        data = reader(Path(path), progress=progress)
        if archs is None:
            archs, archs_from = data.archs, str(path)
        else:
            _agree(archs, data.archs, archs_from, str(path))
        layers.append(data.columns)
    if archs is None:
        raise NbsError("nothing to build the benchmark from: give a source folder or an official file")
    df = _row_columns(archs, expected_keys)
    merged: dict[str, tuple[ColumnSpec, np.ndarray]] = {}
    for layer in layers:
        for spec in layer.specs:
            merged[spec.name] = (spec, layer.values[spec.name])
    specs = sort_specs(spec for spec, _ in merged.values())
    metrics = pd.DataFrame({s.name: merged[s.name][1] for s in specs}, index=df.index)
    df = pd.concat([df, metrics], axis=1)
    df.attrs[SPECS_ATTR] = specs
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike, specs: Sequence[ColumnSpec] | None = None) -> Path:
    """Write ``df`` as Parquet atomically (temp file + ``os.replace``) with its specs as metadata.

    A crash mid-write leaves the old table (or nothing), never a truncated one that later loads
    as garbage. ``specs`` defaults to ``df.attrs[SPECS_ATTR]`` as set by :func:`build_table`.
    """
    path = Path(path)
    specs = list(specs if specs is not None else df.attrs.get(SPECS_ATTR, []))
    if not specs:
        raise NbsError("no column specs to store with the table (build it with build_table)")
    missing = [c for c in (*ROW_COLUMNS, *(s.name for s in specs)) if c not in df.columns]
    if missing:
        raise NbsError(f"table lacks column(s) {', '.join(missing)}")
    frame = df[[*ROW_COLUMNS, *(s.name for s in specs)]]
    frame.attrs = {}  # the specs go in our own metadata key, not pandas' (which cannot encode them)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {
        **(table.schema.metadata or {}),
        META_COLUMNS: specs_to_json(specs).encode(),
        META_VERSION: TABLE_VERSION.encode(),
    }
    table = table.replace_schema_metadata(metadata)
    ensure_folder(path.parent, "benchmark table folder")
    with writing(path, "benchmark table"):
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def build_and_write(
    out: str | os.PathLike | None = None,
    source_dir: str | os.PathLike | None = None,
    nb201_pth: str | os.PathLike | None = None,
    nats_path: str | os.PathLike | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> Path:
    """What ``nbs bench build`` does: build and write the table, returning where it went.

    ``out`` defaults to where ``Benchmark.load()`` looks; ``source_dir`` to ``shared/nb201`` when
    present. An existing table is kept unless ``force`` (checked before any slow work).
    """
    target = locate.table_path(out)
    if target.is_dir():
        raise NbsError(f"benchmark table {target} is a folder; give a .parquet file name")
    if target.exists() and not force:
        raise NbsError(f"benchmark table {target} already exists; use --force to rebuild it")
    check_writable(target.parent, "benchmark table folder")  # before the (possibly slow) build; creates nothing
    given_paths = (("source folder", source_dir), ("NAS-Bench-201 file", nb201_pth), ("NATS-Bench data", nats_path))
    for what, given in given_paths:
        if given is not None and not Path(given).exists():
            raise MissingFileError(f"missing {what}: {given}")
    if source_dir is None:
        source_dir = locate.default_source_dir()
    if source_dir is None and nb201_pth is None and nats_path is None:
        raise MissingFileError(
            "no NAS-Bench-201 data found: pass a source folder (shared/nb201) or an official .pth / NATS-Bench path, "
            f"or set {paths.SHARED_ENV} to the reference-data folder"
        )
    df = build_table(source_dir, nb201_pth=nb201_pth, nats_path=nats_path, progress=progress)
    return write_table(df, target)


def ensure_table(path: str | os.PathLike | None = None, log=print) -> Path:
    """The benchmark table's path, built first — where and from what ``nbs bench build`` would — when
    it does not exist yet, so a first ``nbs run`` on a fresh machine needs no separate build step.
    A path given explicitly (``--benchmark``) is never built implicitly: a typo there should fail."""
    target = locate.table_path(path)
    if target.exists() or path is not None:
        return target
    if locate.default_source_dir() is None:
        # only trusted places are looked in (paths.shared_dir): not ../shared of the working folder
        raise MissingFileError(f"no benchmark table at {target}, and no NAS-Bench-201 source to build it from: "
                               f"run `nbs bench build --source DIR` (or --nb201-pth / --nats), or set "
                               f"{paths.SHARED_ENV} to the reference-data folder")
    log(f"no benchmark table at {target}: building it once from {locate.default_source_dir()}")
    try:
        return build_and_write(target)
    except NbsError:
        if target.exists():   # another process built it meanwhile
            return target
        raise


def _read_offline(nb201_dir: Path) -> tuple[list[str], list[str], list[SourceColumns]]:
    """Arch order, expected isomorphism keys and column layers from a ``shared/nb201``-like folder."""
    if not nb201_dir.is_dir():
        raise MissingFileError(f"missing NB201 source folder: {nb201_dir}")
    archs, keys, nats_cols = sources.read_nats_csv(nb201_dir)
    mini_archs, mini_cols = sources.read_minibench(nb201_dir)
    _agree(archs, mini_archs, sources.NATS_CSV, sources.MINIBENCH)
    index_of = {arch: i for i, arch in enumerate(archs)}
    layers = [
        nats_cols,
        mini_cols,
        sources.read_naslib_zip(nb201_dir, index_of),
        sources.read_zc_costs(nb201_dir, index_of),
    ]
    return archs, keys, layers


def _agree(archs: list[str], other: list[str], name: str, other_name: str) -> list[str]:
    """``archs`` if ``other`` lists the same cells in the same order; else a one-line NbsError."""
    if len(archs) != len(other):
        raise NbsError(f"{name} has {len(archs)} cells but {other_name} has {len(other)}")
    for i, (a, b) in enumerate(zip(archs, other)):
        if a != b:
            raise NbsError(f"{name} and {other_name} disagree at index {i}: {a} vs {b}")
    return archs


def _row_columns(archs: list[str], expected_keys: list[str] | None) -> pd.DataFrame:
    """The identity columns; checks the space is complete and our isomorphism key matches the data's."""
    if len(archs) != NUM_CELLS:
        raise NbsError(f"expected {NUM_CELLS} NB201 cells, got {len(archs)}")
    genotypes = [Genotype.from_str(a) for a in archs]
    canonical = [g.to_str() for g in genotypes]
    if canonical != list(archs):
        i = next(i for i, (a, c) in enumerate(zip(archs, canonical)) if a != c)
        raise NbsError(f"arch string at index {i} is not in canonical NB201 form: {archs[i]}")
    if len(set(archs)) != NUM_CELLS:
        raise NbsError("the NB201 arch list contains duplicates")
    keys = [g.canonical_key for g in genotypes]
    if expected_keys is not None and keys != list(expected_keys):
        i = next(i for i, (a, b) in enumerate(zip(keys, expected_keys)) if a != b)
        raise NbsError(f"isomorphism key mismatch at index {i}: computed {keys[i]}, file says {expected_keys[i]}")
    return pd.DataFrame(
        {
            "index": np.arange(NUM_CELLS, dtype=np.int64),
            "arch": archs,
            "canonical_key": keys,
            "naslib": [str(g.to_naslib()) for g in genotypes],
            "param_free_count": np.array([g.param_free_count for g in genotypes], dtype=np.int64),
        }
    )
