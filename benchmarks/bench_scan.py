"""A topic as a table: the 1,067,371-row retail frame (Arrow, 3 partitions,
Kafka timestamps = InvoiceDate) read from one LocalBroker, again and again.

    python benchmarks/bench_scan.py [--reads 7] [--rows N] [--format-rows 300000]

Compares, by median wall time:
- a full scan (read_topic) with Consumer.poll_frame reading the same topic;
- a one-week window (scan_topic filtered on InvoiceDate) with the full scan,
  checking once that it equals Polars filtering the sent frame;
- one of the 8 columns (read_topic(columns=[...])) with all 8, on the Arrow
  topic and on JSON, Avro and CSV-lines topics of the first --format-rows
  rows (one row a message, as other producers write them): only the
  selected column is decoded, where a full read decodes all 8.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections.abc import Callable

import polars as pl
from bench_core import read_tskafka

import tskafka as tk
from tskafka import datasets

WEEK = (dt.datetime(2011, 3, 1), dt.datetime(2011, 3, 8))
FORMATS = ("json", "avro", "csv")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=7)
    ap.add_argument("--rows", type=int, default=datasets.RETAIL_ROWS)
    ap.add_argument("--format-rows", type=int, default=300_000)
    args = ap.parse_args()

    broker = tk.LocalBroker(schema_registry=True)
    bootstrap = broker.bootstrap_servers
    registry = {"schema.registry.url": broker.schema_registry_url}
    retail = datasets.online_retail(rows=args.rows)
    n = retail.height
    tk.Admin(bootstrap).create_topic("retail", partitions=3)
    tk.Producer(bootstrap).send("retail", retail, timestamp="InvoiceDate")
    some = retail.head(args.format_rows)
    for fmt in FORMATS:
        tk.Admin(bootstrap).create_topic(f"retail-{fmt}", partitions=3)
        tk.Producer(bootstrap, registry).send(f"retail-{fmt}", some, format=fmt, rows_per_message=1)

    in_week = pl.col("InvoiceDate").is_between(*WEEK, closed="left")
    week_stats = tk.ScanStats()

    def week() -> pl.DataFrame:
        lazy = tk.scan_topic("retail", bootstrap, time_column="InvoiceDate", stats=week_stats)
        return lazy.filter(in_week).collect()

    expected = retail.filter(in_week)
    # Sorted by every column: an invoice may list a stock code twice.
    got = week().drop(tk.scan.METADATA_COLUMNS).sort(retail.columns, nulls_last=True)
    assert got.equals(expected.sort(retail.columns, nulls_last=True)), "week differs"
    full_stats = tk.TopicSnapshot("retail", bootstrap)
    full_stats.to_arrow()

    reads: dict[str, Callable[[], object]] = {
        "Consumer.poll_frame": lambda: read_tskafka(bootstrap, "retail", n),
        "read_topic (full scan)": lambda: tk.read_topic("retail", bootstrap),
        "scan_topic one week": week,
        "read_topic 8 columns": lambda: tk.read_topic(
            "retail", bootstrap, columns=list(retail.columns)
        ),
        "read_topic 1 column": lambda: tk.read_topic("retail", bootstrap, columns=["Quantity"]),
    }
    for fmt in FORMATS:

        def read(fmt: str = fmt, columns: list[str] | None = None) -> pl.DataFrame:
            return tk.read_topic(f"retail-{fmt}", bootstrap, registry, format=fmt, columns=columns)

        # CSV lines carry no names: the columns are column_1, column_2, ...
        if fmt == "csv":
            names = [f"column_{i}" for i in range(1, len(retail.columns) + 1)]
        else:
            names = list(retail.columns)
        quantity = names[retail.columns.index("Quantity")]
        reads[f"{fmt} 8 columns"] = lambda read=read, names=names: read(columns=names)
        reads[f"{fmt} 1 column"] = lambda read=read, q=quantity: read(columns=[q])
        one = read(columns=[quantity])
        assert one.equals(read().select(quantity)), f"{fmt}: 1 column differs"
    wall: dict[str, list[float]] = {label: [] for label in reads}
    for i in range(args.reads):
        for label in list(reads)[:: 1 if i % 2 == 0 else -1]:
            started = time.perf_counter()
            reads[label]()
            wall[label].append(time.perf_counter() - started)
    med = {label: statistics.median(times) for label, times in wall.items()}
    print(f"retail frame: {n:,} rows in 3 partitions, {args.reads} reads of each, median:")
    for label in reads:
        rows = min(args.format_rows, n) if label.startswith(FORMATS) else n
        print(f"  {label:<24} {med[label] * 1000:8.1f} ms  {rows / med[label] / 1e6:6.1f}M rows/s")
    print(
        f"  full scan vs poll_frame: {med['Consumer.poll_frame'] / med['read_topic (full scan)']:.2f}x"
    )
    print(
        f"  one week vs full scan:   {med['read_topic (full scan)'] / med['scan_topic one week']:.1f}x "
        f"faster ({week_stats.messages} of {full_stats.stats.messages} messages, "
        f"{expected.height:,} rows in the week)"
    )
    print(
        f"  1 of 8 columns vs all:   "
        f"{med['read_topic 8 columns'] / med['read_topic 1 column']:.2f}x faster (Arrow)"
    )
    m = min(args.format_rows, n)
    for fmt in FORMATS:
        all8, one = med[f"{fmt} 8 columns"], med[f"{fmt} 1 column"]
        print(
            f"  {fmt}: {m:,} rows, 8 columns {all8 * 1000:.1f} ms ({m / all8 / 1e6:.2f}M rows/s), "
            f"1 column {one * 1000:.1f} ms ({m / one / 1e6:.2f}M rows/s): {all8 / one:.2f}x faster"
        )
    broker.close()


if __name__ == "__main__":
    main()
