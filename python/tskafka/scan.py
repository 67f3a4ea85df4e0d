"""A topic as a table: ``scan_topic`` (a Polars LazyFrame), ``read_topic``
(eager) and ``TopicSnapshot`` (anything that reads the Arrow PyCapsule
stream: DuckDB, pyarrow, Polars).

Each read is a snapshot: every partition from its low watermark up to its
high watermark as they are when the read starts, in parallel on native
threads, without a consumer group and committing nothing. Filters on
``kafka_timestamp`` (or ``time_column``), ``kafka_partition`` and
``kafka_offset`` decide which offsets are fetched; the whole filter is
applied to the rows afterwards all the same, so pushdown never changes an
answer (for an end time, given timestamps that do not go back within a
partition: see ``scan_topic``).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import pyarrow as pa

from . import _tskafka
from ._config import ConfigLike, native
from ._frames import convert
from .consumer import _column_names, _csv_dtypes
from .exceptions import ConfigError

METADATA_COLUMNS = ("kafka_partition", "kafka_offset", "kafka_timestamp", "kafka_key")

Bound = _dt.datetime | _dt.date | int | None


@dataclass(frozen=True)
class Pushdown:
    """What a filter says about which offsets can hold matching rows."""

    partitions: frozenset[int] | None = None
    start_offset: int | None = None
    end_offset: int | None = None
    """Exclusive."""
    start_ms: int | None = None
    end_ms: int | None = None
    """Exclusive: the first Kafka timestamp (ms) not wanted."""
    row_start_ms: int | None = None
    row_end_ms: int | None = None
    """On ``time_column``: rows before this time (ms, exclusive) are wanted."""

    def __and__(self, other: Pushdown) -> Pushdown:
        def tighter(a: int | None, b: int | None, pick: Any) -> int | None:
            return b if a is None else a if b is None else pick(a, b)

        parts = self.partitions
        if other.partitions is not None:
            parts = other.partitions if parts is None else parts & other.partitions
        return Pushdown(
            partitions=parts,
            start_offset=tighter(self.start_offset, other.start_offset, max),
            end_offset=tighter(self.end_offset, other.end_offset, min),
            start_ms=tighter(self.start_ms, other.start_ms, max),
            end_ms=tighter(self.end_ms, other.end_ms, min),
            row_start_ms=tighter(self.row_start_ms, other.row_start_ms, max),
            row_end_ms=tighter(self.row_end_ms, other.row_end_ms, min),
        )

    def native(self) -> dict[str, Any]:
        """The time and offset arguments of the native scan."""
        start = self.start_ms
        if self.row_start_ms is not None:
            start = self.row_start_ms if start is None else max(start, self.row_start_ms)
        # An exact end on kafka_timestamp wins over the one message more a row time needs.
        row_times = self.end_ms is None and self.row_end_ms is not None
        return {
            "start_offset": self.start_offset,
            "end_offset": self.end_offset,
            "start_ms": start,
            "end_ms": self.row_end_ms if row_times else self.end_ms,
            "row_times": row_times,
        }


_FLIP = {"Lt": "Gt", "LtEq": "GtEq", "Gt": "Lt", "GtEq": "LtEq", "Eq": "Eq"}


def _literal(node: Any) -> Any:
    """A literal of the serialized expression, evaluated by Polars itself."""
    import polars as pl

    expr = pl.Expr.deserialize(io.StringIO(json.dumps(node)), format="json")
    return pl.select(expr).to_series()


def _epoch_us(node: Any) -> int | None:
    """A datetime or date literal as microseconds since the epoch (naive: UTC)."""
    import polars as pl

    s = _literal(node)
    if s.len() != 1 or s.null_count():
        return None
    if s.dtype == pl.Date:
        return int(s.cast(pl.Int64).item()) * 86_400_000_000
    if isinstance(s.dtype, pl.Datetime):
        return int(s.dt.epoch("us").item())
    return None


def _integers(node: Any) -> list[int] | None:
    import polars as pl

    s = _literal(node)
    if s.dtype == pl.List(pl.Null) or isinstance(s.dtype, pl.List | pl.Array):
        s = s.explode()
    if not s.dtype.is_integer() or s.null_count():
        return None
    return [int(v) for v in s.to_list()]


def _ms_from(us: int, op: str, exact: bool) -> tuple[str, int]:
    """A bound in µs on a column as a bound in Kafka's ms: ('start', first ms
    wanted) or ('end', first ms not wanted). ``exact``: the column holds the
    Kafka timestamp itself (ms); else it is a data column whose latest value
    in a message is the message's timestamp, and the bound stays conservative."""
    if op in ("Gt", "GtEq"):
        if not exact:
            return "start", math.floor(us / 1000)
        return "start", (us // 1000 + 1) if op == "Gt" else -(-us // 1000)
    # Lt / LtEq
    if not exact:
        return "end", -(-us // 1000)
    return "end", (us // 1000 + 1) if op == "LtEq" else -(-us // 1000)


def _comparison(column: str, op: str, value: Any, time_column: str | None) -> Pushdown:
    if column in ("kafka_timestamp", time_column):
        us = _epoch_us(value)
        if us is None:
            return Pushdown()
        exact = column == "kafka_timestamp"
        if op == "Eq":
            return _comparison(column, "GtEq", value, time_column) & _comparison(
                column, "LtEq", value, time_column
            )
        which, ms = _ms_from(us, op, exact)
        if exact:
            return Pushdown(start_ms=ms) if which == "start" else Pushdown(end_ms=ms)
        return Pushdown(row_start_ms=ms) if which == "start" else Pushdown(row_end_ms=ms)
    numbers = _integers(value)
    if not numbers or len(numbers) != 1:
        return Pushdown()
    n = numbers[0]
    if column == "kafka_partition" and op == "Eq":
        return Pushdown(partitions=frozenset([n]))
    if column == "kafka_offset":
        bounds = {
            "Eq": Pushdown(start_offset=n, end_offset=n + 1),
            "Gt": Pushdown(start_offset=n + 1),
            "GtEq": Pushdown(start_offset=n),
            "Lt": Pushdown(end_offset=n),
            "LtEq": Pushdown(end_offset=n + 1),
        }
        return bounds[op]
    return Pushdown()


def _walk(node: Any, time_column: str | None) -> Pushdown:
    """The pushdown of one node; anything not understood pushes nothing."""
    pushable = {"kafka_timestamp", "kafka_partition", "kafka_offset", time_column}
    if not isinstance(node, dict) or len(node) != 1:
        return Pushdown()
    kind, body = next(iter(node.items()))
    if kind == "BinaryExpr":
        op, left, right = body.get("op"), body.get("left"), body.get("right")
        if op in ("And", "LogicalAnd"):
            return _walk(left, time_column) & _walk(right, time_column)
        if op not in _FLIP:
            return Pushdown()
        if (
            isinstance(left, dict)
            and "Column" in left
            and isinstance(right, dict)
            and "Literal" in right
        ):
            column, value = left["Column"], right
        elif (
            isinstance(right, dict)
            and "Column" in right
            and isinstance(left, dict)
            and "Literal" in left
        ):
            column, value, op = right["Column"], left, _FLIP[op]
        else:
            return Pushdown()
        return _comparison(column, op, value, time_column) if column in pushable else Pushdown()
    if kind == "Function":
        function, inputs = body.get("function"), body.get("input") or []
        boolean = function.get("Boolean") if isinstance(function, dict) else None
        if not isinstance(boolean, dict) or not inputs or "Column" not in inputs[0]:
            return Pushdown()
        column = inputs[0]["Column"]
        if column not in pushable or not all("Literal" in i for i in inputs[1:]):
            return Pushdown()
        if "IsBetween" in boolean and len(inputs) == 3:
            closed = boolean["IsBetween"].get("closed", "Both")
            low = "GtEq" if closed in ("Both", "Left") else "Gt"
            high = "LtEq" if closed in ("Both", "Right") else "Lt"
            return _comparison(column, low, inputs[1], time_column) & _comparison(
                column, high, inputs[2], time_column
            )
        if "IsIn" in boolean and len(inputs) == 2 and column in ("kafka_partition", "kafka_offset"):
            numbers = _integers(inputs[1])
            if numbers is None:
                return Pushdown()
            if column == "kafka_partition":
                return Pushdown(partitions=frozenset(numbers))
            if numbers:
                return Pushdown(start_offset=min(numbers), end_offset=max(numbers) + 1)
            return Pushdown(start_offset=0, end_offset=0)
    return Pushdown()


def pushdown(predicate: Any, time_column: str | None = None) -> Pushdown:
    """What a Polars predicate says about the offsets to fetch: found by
    walking its serialized form; anything not understood pushes nothing
    down (the predicate is applied to every row all the same)."""
    if predicate is None:
        return Pushdown()
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
        return _walk(tree, time_column)
    except Exception:  # noqa: BLE001 - a form this Polars version writes differently: no pushdown
        return Pushdown()


def _millis(t: Bound, name: str) -> int | None:
    """A time bound as ms since the epoch (a naive datetime or a date: UTC)."""
    if t is None:
        return None
    if isinstance(t, bool):
        raise ConfigError(f"{name} must be a datetime, a date or epoch ms, got {t!r}")
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=_dt.UTC)
        return math.floor(t.timestamp() * 1000)
    if isinstance(t, _dt.date):
        return _millis(_dt.datetime(t.year, t.month, t.day), name)
    if isinstance(t, int):
        return t
    raise ConfigError(f"{name} must be a datetime, a date or epoch ms, got {t!r}")


@dataclass
class ScanStats:
    """What the last read of a scan fetched, per partition and in total: pass
    one as ``scan_topic(..., stats=ScanStats())`` to see what a query read."""

    messages: int = 0
    bytes: int = 0
    rows: int = 0
    bad_messages: int = 0
    partitions: dict[int, dict[str, Any]] = field(default_factory=dict)
    pushdown: Pushdown | None = None
    runs: int = 0

    def _record(self, native_stats: Mapping[str, Any], pushed: Pushdown | None) -> None:
        _warn_if_out_of_order(native_stats, pushed)
        self.messages = native_stats["messages"]
        self.bytes = native_stats["bytes"]
        self.rows = native_stats["rows"]
        self.bad_messages = native_stats["bad_messages"]
        self.partitions = dict(native_stats["partitions"])
        self.pushdown = pushed
        self.runs += 1


def _warn_if_out_of_order(native_stats: Mapping[str, Any], pushed: Pushdown | None) -> None:
    """An end time looked up as an offset assumes timestamps that do not go
    back within a partition: say so when the rows read show they do. (A
    start time needs no such assumption: Kafka answers the first offset whose
    timestamp is at or after it, so every earlier record is earlier.)"""
    if pushed is None or pushed.native()["end_ms"] is None:
        return
    back = {
        p: s["out_of_order"] for p, s in native_stats["partitions"].items() if s.get("out_of_order")
    }
    if back:
        warnings.warn(
            f"timestamps go back within partitions {sorted(back)} of the range read "
            f"({sum(back.values())} messages at least): an end time looked up as an offset may miss "
            "later records that are earlier than it; filter a scan without an end time to "
            "be sure",
            stacklevel=4,
        )


def _partition_list(partitions: int | Iterable[int] | None) -> list[int] | None:
    if partitions is None:
        return None
    if isinstance(partitions, int) and not isinstance(partitions, bool):
        return [partitions]
    try:
        out = [int(p) for p in partitions]  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(
            f"partitions must be a partition number or a list of them, got {partitions!r}"
        ) from None
    return out


def _offset_range(offsets: tuple[int | None, int | None] | None) -> tuple[int | None, int | None]:
    if offsets is None:
        return None, None
    if not isinstance(offsets, tuple | list) or len(offsets) != 2:
        raise ConfigError(
            f"offsets must be (start, end), end exclusive (None: open), got {offsets!r}"
        )
    return offsets[0], offsets[1]


@dataclass(frozen=True)
class _Source:
    """Where and how to read: the arguments every read of a topic shares."""

    topic: str
    bootstrap_servers: str | None
    config: Any
    format: str
    partitions: list[int] | None
    json_schema: Any
    on_error: str
    timeout: float
    time_column: str | None
    base: Pushdown
    headers: bool = False
    decoding: dict[str, Any] = field(default_factory=dict)

    def plan(self, pushed: Pushdown = Pushdown()) -> Any:
        """The native scan of the offsets that ``pushed`` leaves (None: none)."""
        wanted = self.base & pushed
        partitions = self.partitions
        if wanted.partitions is not None:
            partitions = sorted(
                set(wanted.partitions) & set(partitions)
                if partitions is not None
                else wanted.partitions
            )
            if not partitions:
                return None
        return _tskafka.TopicScan(
            self.topic,
            self.bootstrap_servers,
            self.config,
            format=self.format,
            partitions=partitions,
            json_schema=self.json_schema,
            on_error=self.on_error,
            headers=self.headers,
            timeout=self.timeout,
            **self.decoding,
            **wanted.native(),
        )


@dataclass(frozen=True)
class _Decoding:
    """How messages are decoded, as the Consumer takes it: CSV lines'
    ``new_columns`` (the Consumer's ``columns=``: here ``columns=`` selects),
    ``header``, ``delimiter``, ``encoding``; text's ``errors``; pandas'
    ``json_orient``; ``key_format``."""

    new_columns: Sequence[str] | None = None
    header: bool = False
    delimiter: str = ","
    encoding: str = "utf-8"
    errors: str = "strict"
    json_orient: str | None = None
    key_format: str | None = None

    def native(self, csv_schema: Any) -> dict[str, Any]:
        return {
            "csv_columns": None if self.new_columns is None else _column_names(self.new_columns),
            "header": bool(self.header),
            "csv_schema": _csv_dtypes(csv_schema),
            "delimiter": self.delimiter,
            "encoding": self.encoding,
            "errors": self.errors,
            "json_orient": self.json_orient,
            "key_format": self.key_format,
        }


def _source(
    topic: str,
    bootstrap_servers: str | None,
    config: ConfigLike,
    *,
    format: str,
    partitions: int | Iterable[int] | None,
    start: Bound,
    end: Bound,
    offsets: tuple[int | None, int | None] | None,
    time_column: str | None,
    schema: Any,
    on_error: str,
    timeout: float,
    headers: bool = False,
    decoding: _Decoding | None = None,
) -> _Source:
    if not isinstance(topic, str) or not topic:
        raise ConfigError(f"topic must be a topic name, got {topic!r}")
    start_ms, end_ms = _millis(start, "start"), _millis(end, "end")
    first, last = _offset_range(offsets)
    base = Pushdown(start_offset=first, end_offset=last)
    if start_ms is not None or end_ms is not None:
        # start/end bound the Kafka timestamps (kafka_timestamp), start inclusive, end exclusive.
        base = replace(base, start_ms=start_ms, end_ms=end_ms)
    return _Source(
        topic=topic,
        bootstrap_servers=bootstrap_servers,
        config=native(config, "consumer"),
        format=format,
        partitions=_partition_list(partitions),
        # CSV's schema= pins its columns' dtypes (as the Consumer's), below.
        json_schema=None if format == "csv" else _json_schema(schema),
        on_error=on_error,
        timeout=timeout,
        time_column=time_column,
        base=base,
        headers=bool(headers),
        decoding=(decoding or _Decoding()).native(schema if format == "csv" else None),
    )


def _json_schema(schema: Any) -> pa.Schema | None:
    """``schema`` (the data columns: a pyarrow.Schema, a Polars schema or
    {name: dtype}) as the pyarrow.Schema JSON messages are read into."""
    if schema is None or isinstance(schema, pa.Schema):
        return schema
    import polars as pl

    return pl.DataFrame(schema=dict(schema)).to_arrow().schema


def _each_frame(run: Any) -> Iterator[Any]:
    """Each frame of ``run`` as it is decoded (an Arrow stream)."""
    while (frame := run.next_frame()) is not None:
        yield frame


def _concat(streams: list[Any], empty: pa.Schema) -> pa.Table:
    if not streams:
        return empty.empty_table()
    tables = [convert(s, "pyarrow") for s in streams]
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


class TopicSnapshot:
    """A snapshot of a topic: the offsets each partition holds now (within
    ``start``/``end``, ``offsets`` and ``partitions``), read whenever asked,
    the same offsets each time.

    It speaks the Arrow PyCapsule stream interface, so ``pyarrow.table(snap)``,
    ``polars.DataFrame(snap)`` and ``duckdb.sql("SELECT ... FROM snap")``
    read it. ``stats`` says what the last read fetched; ``ranges`` the
    offsets planned: ``{partition: (start, end)}``.
    """

    def __init__(
        self,
        topic: str,
        bootstrap_servers: str | None = None,
        config: ConfigLike = None,
        *,
        format: str = "auto",
        partitions: int | Iterable[int] | None = None,
        start: Bound = None,
        end: Bound = None,
        offsets: tuple[int | None, int | None] | None = None,
        columns: Iterable[str] | None = None,
        limit: int | None = None,
        schema: Any = None,
        on_error: str = "raise",
        timeout: float = 10.0,
        headers: bool = False,
        new_columns: Sequence[str] | None = None,
        header: bool = False,
        delimiter: str = ",",
        encoding: str = "utf-8",
        errors: str = "strict",
        json_orient: str | None = None,
        key_format: str | None = None,
    ) -> None:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ConfigError(f"limit must be a number of rows >= 0 or None, got {limit!r}")
        self._source = _source(
            topic,
            bootstrap_servers,
            config,
            format=format,
            partitions=partitions,
            start=start,
            end=end,
            offsets=offsets,
            time_column=None,
            schema=schema,
            on_error=on_error,
            timeout=timeout,
            headers=headers,
            decoding=_Decoding(
                new_columns, header, delimiter, encoding, errors, json_orient, key_format
            ),
        )
        self.columns = None if columns is None else list(columns)
        self.limit = limit
        self._native = self._source.plan()
        self.stats = ScanStats()

    @property
    def topic(self) -> str:
        return self._source.topic

    @property
    def ranges(self) -> dict[int, tuple[int, int]]:
        return {p: (start, end) for p, _low, _high, start, end in self._native.ranges}

    def _streams(self, string_views: bool) -> list[Any]:
        """The rows as Arrow streams: one per run of frames of one schema."""
        run = self._native.run(
            limit=self.limit, columns=self.columns, string_views=string_views, whole=True
        )
        try:
            return run.read_all()
        finally:
            self.stats._record(run.stats, self._source.base)
            run.close()

    def _empty_schema(self) -> pa.Schema:
        schema = _empty_schema(self._source.json_schema, self._source.headers)
        if self.columns is not None:
            schema = pa.schema([f for f in schema if f.name in self.columns])
        return schema

    def to_arrow(self) -> pa.Table:
        """Every row, partition by partition (each in offset order)."""
        return _concat(self._streams(string_views=False), self._empty_schema())

    def to_polars(self) -> Any:
        import polars as pl

        streams = self._streams(string_views=True)
        if not streams:
            return _frame(self._empty_schema().empty_table())
        if len(streams) == 1:
            return _frame(streams[0])
        return pl.concat([_frame(s) for s in streams], how="diagonal_relaxed", rechunk=False)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        streams = self._streams(string_views=False)
        if len(streams) == 1:
            return streams[0].__arrow_c_stream__(requested_schema)
        return _concat(streams, self._empty_schema()).__arrow_c_stream__(requested_schema)

    def __repr__(self) -> str:
        spans = ", ".join(f"{p}: {s}..{e}" for p, (s, e) in self.ranges.items())
        return f"TopicSnapshot({self.topic!r}, offsets {{{spans}}})"


def read_topic(
    topic: str,
    bootstrap_servers: str | None = None,
    config: ConfigLike = None,
    *,
    format: str = "auto",
    partitions: int | Iterable[int] | None = None,
    start: Bound = None,
    end: Bound = None,
    offsets: tuple[int | None, int | None] | None = None,
    columns: Iterable[str] | None = None,
    limit: int | None = None,
    schema: Any = None,
    output: Literal["polars", "pyarrow"] = "polars",
    on_error: str = "raise",
    timeout: float = 10.0,
    headers: bool = False,
    new_columns: Sequence[str] | None = None,
    header: bool = False,
    delimiter: str = ",",
    encoding: str = "utf-8",
    errors: str = "strict",
    json_orient: str | None = None,
    key_format: str | None = None,
) -> Any:
    """Everything in ``topic`` now, as one frame: the data columns and
    ``kafka_partition``, ``kafka_offset``, ``kafka_timestamp`` (UTC) and
    ``kafka_key``, partition by partition in offset order.

    - ``start``/``end``: a time range of the Kafka timestamps (datetimes, naive
      meaning UTC, dates or epoch ms; ``end`` exclusive), looked up as offsets
      (ListOffsets by time), so only that range is fetched.
    - ``offsets=(first, end)`` (end exclusive), ``partitions``: only those.
    - ``columns``: only these columns (Arrow IPC, JSON, Avro and CSV-lines
      messages decode only those); ``limit``: stop after that many rows.
    - ``headers=True``: a ``kafka_headers`` column, each message's headers as
      a list of ``{key: str, value: bytes}`` (a raw frame's ``headers``).
    - ``format``: as the Consumer's ('auto' detects each message's).
    - ``new_columns``, ``header``, ``delimiter``, ``encoding`` (CSV lines),
      ``errors`` (text), ``json_orient``, ``key_format``: as the Consumer's
      ``columns``, ``header``, ... (``columns=`` selects here, as in Polars);
      with ``format="csv"``, ``schema`` pins the CSV columns' dtypes.
    - ``timeout``: seconds to reach the cluster, and the longest a partition
      may go without a message before its range is read.
    """
    if output not in ("polars", "pyarrow"):
        raise ConfigError(f"output must be 'polars' or 'pyarrow', got {output!r}")
    snap = TopicSnapshot(
        topic,
        bootstrap_servers,
        config,
        format=format,
        partitions=partitions,
        start=start,
        end=end,
        offsets=offsets,
        columns=columns,
        limit=limit,
        schema=schema,
        on_error=on_error,
        timeout=timeout,
        headers=headers,
        new_columns=new_columns,
        header=header,
        delimiter=delimiter,
        encoding=encoding,
        errors=errors,
        json_orient=json_orient,
        key_format=key_format,
    )
    return snap.to_polars() if output == "polars" else snap.to_arrow()


HEADERS_TYPE = pa.list_(
    pa.field(
        "item",
        pa.struct([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.binary())]),
        nullable=False,
    )
)
"""The type of ``kafka_headers`` (as of a raw frame's ``headers``)."""


def _empty_schema(json_schema: pa.Schema | None, headers: bool = False) -> pa.Schema:
    """The columns of a read that finds no rows: the data columns given, then
    the metadata columns as the native reader makes them."""
    metadata = [
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        pa.field("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("kafka_key", pa.string()),
    ]
    if headers:
        metadata.append(pa.field("kafka_headers", HEADERS_TYPE, nullable=False))
    return pa.schema([*(json_schema or []), *metadata])


def _frame(data: Any) -> Any:
    """An Arrow stream (or pyarrow.Table) as a polars.DataFrame."""
    return convert(data, "polars")


def _conform(df: Any, schema: Any) -> Any:
    """``df`` with exactly ``schema``'s columns and types (missing ones null)."""
    import polars as pl

    if df.schema == schema:
        return df
    return df.select(
        [
            pl.col(name).cast(dtype) if name in df.columns else pl.lit(None, dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )


def scan_topic(
    topic: str,
    bootstrap_servers: str | None = None,
    config: ConfigLike = None,
    *,
    format: str = "auto",
    partitions: int | Iterable[int] | None = None,
    start: Bound = None,
    end: Bound = None,
    offsets: tuple[int | None, int | None] | None = None,
    time_column: str | None = None,
    schema: Any = None,
    stats: ScanStats | None = None,
    on_error: str = "raise",
    timeout: float = 10.0,
    headers: bool = False,
    new_columns: Sequence[str] | None = None,
    header: bool = False,
    delimiter: str = ",",
    encoding: str = "utf-8",
    errors: str = "strict",
    json_orient: str | None = None,
    key_format: str | None = None,
) -> Any:
    """``topic`` as a ``polars.LazyFrame``, read when collected: a snapshot of
    every partition as it is then. Columns: the data columns and
    ``kafka_partition``, ``kafka_offset``, ``kafka_timestamp`` (UTC),
    ``kafka_key`` (``headers=True``: and ``kafka_headers``, each message's
    headers as a list of ``{key: str, value: bytes}``).

    Pushdown: a filter on ``kafka_timestamp`` (comparisons, ``is_between``)
    is looked up as offsets per partition (ListOffsets by time), so only that
    range is fetched; on ``kafka_partition`` (``==``, ``is_in``) only those
    partitions; on ``kafka_offset`` only that range; ``head(n)`` stops
    fetching; a selection of columns decodes only those (and those the
    filter names) from Arrow IPC, JSON, Avro and CSV-lines messages.
    ``time_column``: the data column the messages' timestamps were
    taken from (``Producer.send(..., timestamp=...)``), rows in time order;
    its filters are pushed down too (the message reaching the end is read
    whole). The filter is applied to every row afterwards all the same.
    A start time is exact whatever the order of the timestamps (Kafka
    answers the first offset at or after it); an end time assumes
    timestamps that do not go back within a partition: records after the
    first one at or past it are not read.

    The data columns come from the first message of the first partition
    holding any (or ``schema=``, ``{name: dtype}``, when given); an empty
    topic has the metadata columns only. ``start``/``end``/``offsets``/
    ``partitions`` restrict every query, and ``new_columns``, ``header``,
    ``json_orient``... decode messages, as in ``read_topic``. Pass
    ``stats=ScanStats()`` to see what each query fetched.
    """
    import polars as pl
    from polars.io.plugins import register_io_source

    source = _source(
        topic,
        bootstrap_servers,
        config,
        format=format,
        partitions=partitions,
        start=start,
        end=end,
        offsets=offsets,
        time_column=time_column,
        schema=schema,
        on_error=on_error,
        timeout=timeout,
        headers=headers,
        decoding=_Decoding(
            new_columns, header, delimiter, encoding, errors, json_orient, key_format
        ),
    )
    # Found now: an unknown topic or an unreachable cluster fails here, plainly.
    full_schema, known = _schema(source, None if format == "csv" else schema)

    def read(
        with_columns: list[str] | None,
        predicate: Any,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[Any]:
        full = full_schema
        pushed = pushdown(predicate, time_column)
        if pushed.partitions is not None:
            # A filter naming partitions the topic lacks: no rows there, not an error.
            pushed = replace(pushed, partitions=pushed.partitions & known)
        native_scan = source.plan(pushed)
        if native_scan is None:
            if stats is not None:
                stats._record(
                    {"messages": 0, "bytes": 0, "rows": 0, "bad_messages": 0, "partitions": {}},
                    pushed,
                )
            return
        needed = None
        if with_columns is not None:
            wanted = set(with_columns)
            if predicate is not None:
                wanted |= set(predicate.meta.root_names())
            needed = [c for c in full if c in wanted]
        wanted_schema = pl.Schema({c: full[c] for c in needed}) if needed is not None else full
        # Rows past a filter are counted after it: the native limit only without one.
        run = native_scan.run(
            limit=n_rows if predicate is None else None,
            columns=needed,
            batch_rows=max(batch_size or 100_000, 10_000),
            string_views=True,
        )
        left = n_rows
        try:
            for frame in _each_frame(run):
                df = _conform(_frame(frame), wanted_schema)
                if predicate is not None:
                    df = df.filter(predicate)
                if with_columns is not None:
                    df = df.select(with_columns)
                if left is not None:
                    df = df.head(left)
                    left -= df.height
                yield df
                if left == 0:
                    break
        finally:
            run.close()
            if stats is not None:
                stats._record(run.stats, pushed)

    return register_io_source(read, schema=full_schema, explain_name=f"kafka topic {topic!r}")


def _schema(source: _Source, given: Any) -> tuple[Any, frozenset[int]]:
    """The LazyFrame's schema: ``given`` data columns, or those of the first
    message of the first partition holding any; then the metadata columns.
    And the partitions of the topic."""

    native_scan = source.plan()
    known = frozenset(p for p, *_ in native_scan.ranges)
    empty = _frame(_empty_schema(source.json_schema, source.headers).empty_table()).schema
    if given is not None:
        return empty, known
    first = next((p for p, _low, _high, start, end in native_scan.ranges if start < end), None)
    if first is None:
        return empty, known
    run = native_scan.run(limit=1, batch_rows=1, string_views=True, partitions=[first])
    try:
        frame = run.next_frame()
    finally:
        run.close()
    if frame is None:
        return empty, known
    return _frame(frame).schema, known
