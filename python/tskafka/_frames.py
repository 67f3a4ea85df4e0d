"""Frames in and out: anything Arrow-shaped in; polars, pyarrow or pandas out."""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa

Output = Literal["polars", "pyarrow", "pandas"]


def as_arrow_stream(data: Any) -> Any:
    """An object with ``__arrow_c_stream__`` holding the rows of ``data``."""
    if hasattr(data, "collect") and type(data).__name__ == "LazyFrame":
        data = data.collect()
    module = type(data).__module__
    if module.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if module.startswith("polars") and any(str(t) == "Null" for t in getattr(data, "dtypes", ())):
        # Polars exports all-null columns with a buffer arrow-rs refuses; pyarrow converts them.
        return data.to_arrow()
    if hasattr(data, "__arrow_c_stream__"):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "__arrow_c_array__"):
        return pa.record_batch(data)
    raise TypeError(
        f"cannot send a {type(data).__name__}: pass a polars or pandas DataFrame, "
        "a pyarrow Table or RecordBatch, or any object with __arrow_c_stream__"
    )


def native_headers(headers: Any) -> dict[str, bytes] | None:
    """Message headers as the native side takes them (str values UTF-8 encoded)."""
    if headers is None:
        return None
    return {k: v.encode() if isinstance(v, str) else bytes(v) for k, v in headers.items()}


def native_key(key: Any) -> str | list[str] | None:
    """A key column name, or a list of them."""
    return key if key is None or isinstance(key, str) else list(key)


def convert(frame: Any, output: Output) -> Any:
    """A native frame (an Arrow stream, or a pyarrow.Table) as ``output``'s
    frame: imported in its batches through the Arrow PyCapsule interface,
    no copy (Polars imports a stream several times faster than a Table)."""
    if frame is None:
        return None
    if output == "polars":
        import polars as pl

        return pl.DataFrame(frame)
    table = pa.table(frame)
    if output == "pyarrow":
        return table
    if output == "pandas":
        return table.to_pandas()
    raise ValueError(f"output must be 'polars', 'pyarrow' or 'pandas', got {output!r}")


def check_output(output: str) -> Output:
    if output not in ("polars", "pyarrow", "pandas"):
        from .exceptions import ConfigError

        raise ConfigError(f"output must be 'polars', 'pyarrow' or 'pandas', got {output!r}")
    if output == "pandas":
        try:
            import pandas  # noqa: F401
        except ImportError as e:
            raise ImportError('output="pandas" needs pandas: pip install "tskafka[pandas]"') from e
    return output  # type: ignore[return-value]
