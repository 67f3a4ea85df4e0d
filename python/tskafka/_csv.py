"""CSV files read natively in chunks (UTF-8 or Latin-1, datetimes parsed)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa

from . import _tskafka
from ._frames import Output, check_output, convert


def _dtype_name(dtype: Any) -> str:
    """A column type given as a name, a Python type, or a polars/pyarrow type."""
    if isinstance(dtype, str):
        return dtype
    if dtype in (str, int, float, bool):
        return {str: "str", int: "int64", float: "float64", bool: "bool"}[dtype]
    text = str(dtype).lower()
    for names, name in (
        (("string", "utf8", "str"), "str"),
        (("int",), "int64"),
        (("float", "double"), "float64"),
        (("bool",), "bool"),
        (("datetime", "timestamp"), "datetime"),
        (("date",), "date"),
    ):
        if any(n in text for n in names):
            return name
    from .exceptions import ConfigError

    raise ConfigError(
        f"unsupported CSV column type {dtype!r}: use str, int64, float64, bool, datetime or date"
    )


def csv_options(
    *,
    time_column: str | None = None,
    time_format: str | None = None,
    encoding: str = "auto",
    dtypes: Mapping[str, Any] | None = None,
    on_bad_rows: str = "error",
    chunk_rows: int = 65_536,
    delimiter: str | None = None,
) -> dict[str, Any]:
    """The native CSV reader's options, for ``read_csv``, ``iter_csv`` and
    ``replay``. The reader picks the delimiter when it is None: a tab for a
    ``.tsv`` file, else a comma."""
    return {
        "time_column": time_column,
        "time_format": time_format,
        "encoding": encoding,
        "dtypes": None if dtypes is None else {k: _dtype_name(v) for k, v in dtypes.items()},
        "on_bad_rows": on_bad_rows,
        "chunk_rows": chunk_rows,
        "delimiter": delimiter,
    }


def iter_csv(
    path: str | os.PathLike[str], *, output: Output = "polars", **options: Any
) -> Iterator[Any]:
    """The rows of a CSV file as frames of up to ``chunk_rows`` rows; memory
    stays flat however large the file. Options as in :func:`read_csv`."""
    output = check_output(output)
    reader = _tskafka.CsvFile(os.fspath(path), **csv_options(**options))
    for batch in reader:
        yield convert(pa.Table.from_batches([batch]), output)


def read_csv(
    path: str | os.PathLike[str],
    *,
    time_column: str | None = None,
    time_format: str | None = None,
    encoding: str = "auto",
    dtypes: Mapping[str, Any] | None = None,
    on_bad_rows: str = "error",
    chunk_rows: int = 65_536,
    delimiter: str | None = None,
    output: Output = "polars",
) -> Any:
    """A whole CSV file as one frame, read natively.

    - ``encoding``: 'auto' (UTF-8, falling back to Latin-1 for fields that
      are not UTF-8), 'utf-8' (strict: other bytes are an error naming the
      line) or 'latin-1'.
    - Column types are inferred from the first ``chunk_rows`` rows (integer,
      float, bool, datetime, date, else text); ``dtypes`` pins some
      (``{"Invoice": "str"}``). Datetimes are recognised in the common forms
      (``2009-12-01 07:45:00``, ``12/1/2010 8:26``, ISO 8601 with a zone);
      ``time_column`` + ``time_format`` (a strftime format, or
      'epoch_s'/'epoch_ms'/'epoch_us'/'epoch_ns') pin one.
    - A row that does not fit raises ``SchemaError`` naming its line;
      ``on_bad_rows='skip'`` skips and counts such rows instead (a warning
      says how many and where).
    """
    output = check_output(output)
    reader = _tskafka.CsvFile(
        os.fspath(path),
        **csv_options(
            time_column=time_column,
            time_format=time_format,
            encoding=encoding,
            dtypes=dtypes,
            on_bad_rows=on_bad_rows,
            chunk_rows=chunk_rows,
            delimiter=delimiter,
        ),
    )
    table = pa.Table.from_batches(list(reader), schema=reader.schema)
    if reader.rows_skipped:
        import warnings

        first = "; ".join(f"line {line}: {why}" for line, why in reader.bad_rows[:3])
        warnings.warn(
            f"skipped {reader.rows_skipped} bad rows of {os.fspath(path)!r} ({first})",
            stacklevel=2,
        )
    return convert(table, output)
