"""A topic as a table: the 1,067,371-row retail frame (Arrow, 3 partitions,
Kafka timestamps = InvoiceDate) read from one LocalBroker, again and again.

    python benchmarks/bench_scan.py [--reads 7] [--rows N]

Compares, by median wall time:
- a full scan (read_topic) with Consumer.poll_frame reading the same topic;
- a one-week window (scan_topic filtered on InvoiceDate) with the full scan,
  checking once that it equals Polars filtering the sent frame;
- one of the 8 columns (read_topic(columns=[...])) with all 8.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=7)
    ap.add_argument("--rows", type=int, default=datasets.RETAIL_ROWS)
    args = ap.parse_args()

    broker = tk.LocalBroker()
    bootstrap = broker.bootstrap_servers
    retail = datasets.online_retail(rows=args.rows)
    n = retail.height
    tk.Admin(bootstrap).create_topic("retail", partitions=3)
    tk.Producer(bootstrap).send("retail", retail, timestamp="InvoiceDate")

    in_week = pl.col("InvoiceDate").is_between(*WEEK, closed="left")
    week_stats = tk.ScanStats()

    def week() -> pl.DataFrame:
        lazy = tk.scan_topic("retail", bootstrap, time_column="InvoiceDate", stats=week_stats)
        return lazy.filter(in_week).collect()

    expected = retail.filter(in_week)
    got = week().drop(tk.scan.METADATA_COLUMNS).sort("InvoiceDate", "Invoice", "StockCode")
    assert got.equals(expected.sort("InvoiceDate", "Invoice", "StockCode")), "week differs"
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
    wall: dict[str, list[float]] = {label: [] for label in reads}
    for i in range(args.reads):
        for label in list(reads)[:: 1 if i % 2 == 0 else -1]:
            started = time.perf_counter()
            reads[label]()
            wall[label].append(time.perf_counter() - started)
    med = {label: statistics.median(times) for label, times in wall.items()}
    print(f"retail frame: {n:,} rows in 3 partitions, {args.reads} reads of each, median:")
    for label in reads:
        print(f"  {label:<24} {med[label] * 1000:8.1f} ms  {n / med[label] / 1e6:6.1f}M rows/s")
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
        f"{med['read_topic 8 columns'] / med['read_topic 1 column']:.2f}x faster"
    )
    broker.close()


if __name__ == "__main__":
    main()
