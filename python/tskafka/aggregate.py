"""Group-by totals kept across batches, written as Polars expressions."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from .exceptions import ConfigError

# Aggregations whose partial results merge exactly: what each keeps, and how
# partial states combine.
_KEEPS = {
    "Sum": ("sum",),
    "Count": ("count",),
    "Len": ("len",),
    "Mean": ("sum", "count"),
    "Min": ("min",),
    "Max": ("max",),
    "First": ("first",),
    "Last": ("last",),
}
_MERGE = {
    "sum": lambda c: pl.col(c).sum(),
    "count": lambda c: pl.col(c).sum(),
    "len": lambda c: pl.col(c).sum(),
    "min": lambda c: pl.col(c).min(),
    "max": lambda c: pl.col(c).max(),
    "first": lambda c: pl.col(c).first(),
    "last": lambda c: pl.col(c).last(),
}


def _as_frame(frame: Any) -> pl.DataFrame:
    if isinstance(frame, pl.DataFrame):
        return frame
    if type(frame).__module__.startswith("pandas"):
        return pl.from_pandas(frame)
    out = pl.from_arrow(frame)
    return out if isinstance(out, pl.DataFrame) else out.to_frame()


def _split(name: str, expr: pl.Expr) -> tuple[str, pl.Expr | None]:
    """(aggregation, its input) of ``expr``; a plain expression is summed."""
    expr = expr.meta.undo_aliases()
    tree = json.loads(expr.meta.serialize(format="json"))
    if tree == "Len":
        return "Len", None
    if isinstance(tree, dict) and "Agg" in tree:
        (kind,) = tree["Agg"].keys()
        if kind not in _KEEPS:
            raise ConfigError(
                f"aggregate {name!r}: {kind.lower()} cannot be kept across batches; "
                "use sum, count, len, mean, min, max, first or last (keep the rows "
                "and aggregate them at once for the rest)"
            )
        (inner,) = expr.meta.pop()
        return kind, inner
    if expr.meta.is_scalar():
        raise ConfigError(
            f"aggregate {name!r}: {expr} is not one aggregation of a column expression "
            "(write e.g. pl.col('x').sum(), (pl.col('a') * pl.col('b')).mean(), pl.len())"
        )
    return "Sum", expr


class RunningAggregate:
    """Totals by key, updated batch after batch.

    ``by``: key column names or expressions (``pl.col("timestamp").dt.truncate("1m")``);
    None for one row of totals. ``aggs``: output name -> Polars expression,
    one of ``sum``, ``count``, ``len`` (``pl.len()``), ``mean``, ``min``,
    ``max``, ``first``, ``last`` over any row-wise expression; an expression
    with no aggregation is summed, so ``{"revenue": pl.col("Quantity") *
    pl.col("Price")}`` keeps revenue. Only partial states are kept (a mean as
    a sum and a count), so the result equals one group-by over all rows
    however the rows were split into batches (``first``/``last`` follow
    arrival order).

    ``update(frame)`` (also the object itself: pass it as a background
    consumer's callback) folds in a batch; ``result(top=, sort=)`` returns
    the totals. Both may be called from different threads.
    """

    def __init__(
        self,
        by: str | pl.Expr | Sequence[str | pl.Expr] | None,
        aggs: Mapping[str, pl.Expr] | Sequence[pl.Expr],
    ) -> None:
        if by is None:
            keys: list[pl.Expr] = []
        elif isinstance(by, str | pl.Expr):
            keys = [pl.col(by) if isinstance(by, str) else by]
        else:
            keys = [pl.col(k) if isinstance(k, str) else k for k in by]
        self.keys = keys
        self.key_names = [k.meta.output_name() for k in keys]
        if not isinstance(aggs, Mapping):
            aggs = {e.meta.output_name(): e for e in aggs}
        if not aggs:
            raise ConfigError("aggs is empty: name at least one aggregation")
        self.names = list(aggs)
        self._partial: list[pl.Expr] = []
        self._merge: list[pl.Expr] = []
        self._final: list[pl.Expr] = []
        for i, (name, expr) in enumerate(aggs.items()):
            kind, inner = _split(name, expr)
            cols = {keep: f"__{i}_{keep}" for keep in _KEEPS[kind]}
            for keep, col in cols.items():
                self._partial.append(_partial(keep, inner).alias(col))
                self._merge.append(_MERGE[keep](col).alias(col))
            if kind == "Mean":
                final = pl.col(cols["sum"]) / pl.col(cols["count"])
            else:
                (final,) = (pl.col(c) for c in cols.values())
            self._final.append(final.alias(name))
        self._state: pl.DataFrame | None = None
        self._lock = threading.Lock()
        self.rows = 0
        self.batches = 0

    def update(self, frame: Any) -> None:
        """Fold one batch (polars, pandas or Arrow) into the totals."""
        df = _as_frame(frame)
        if df.height == 0:
            return
        if self.keys:
            partial = df.group_by(self.keys).agg(self._partial)
        else:
            partial = df.select(self._partial)
        with self._lock:
            if self._state is not None:
                both = pl.concat([self._state, partial], how="vertical_relaxed")
                if self.keys:
                    partial = both.group_by(self.key_names, maintain_order=True).agg(self._merge)
                else:
                    partial = both.select(self._merge)
            self._state = partial
            self.rows += df.height
            self.batches += 1

    __call__ = update

    def result(
        self,
        top: int | None = None,
        sort: str | Sequence[str] | None = None,
        descending: bool | None = None,
    ) -> pl.DataFrame:
        """The totals so far, one row per key. Sorted by ``sort`` (default:
        with ``top``, the first aggregation, largest first; without, the keys);
        ``top=N`` keeps the first N."""
        with self._lock:
            state = self._state
        if state is None:
            empty = {k: pl.Null for k in self.key_names} | {n: pl.Null for n in self.names}
            return pl.DataFrame(schema=empty)
        out = state.select([pl.col(k) for k in self.key_names] + self._final)
        if sort is None and top is not None:
            sort, descending = self.names[0], True if descending is None else descending
        if sort is None:
            sort, descending = self.key_names, bool(descending)
        if sort:
            out = out.sort(sort, descending=bool(descending), nulls_last=True, maintain_order=True)
        return out if top is None else out.head(top)

    def reset(self) -> None:
        with self._lock:
            self._state = None
            self.rows = 0
            self.batches = 0

    def __len__(self) -> int:
        state = self._state
        return 0 if state is None else state.height

    def __repr__(self) -> str:
        return (
            f"RunningAggregate(by={self.key_names}, aggs={self.names}, "
            f"groups={len(self)}, rows={self.rows})"
        )


def _partial(keep: str, inner: pl.Expr | None) -> pl.Expr:
    if keep == "len":
        return pl.len().cast(pl.Int64)
    assert inner is not None
    if keep == "count":
        return inner.count().cast(pl.Int64)
    return getattr(inner, keep)()
