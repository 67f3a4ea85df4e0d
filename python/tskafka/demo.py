"""The demos behind ``tskafka demo``: everything on an embedded broker."""

from __future__ import annotations

import time

import polars as pl

from . import Admin, Consumer, LocalBroker, datasets, replay


def _running_revenue(totals: pl.DataFrame | None, frame: pl.DataFrame) -> pl.DataFrame:
    batch = frame.group_by("StockCode").agg(
        (pl.col("Quantity") * pl.col("Price")).sum().alias("revenue"), pl.len().alias("lines")
    )
    if totals is None:
        return batch
    return pl.concat([totals, batch]).group_by("StockCode").agg(pl.sum("revenue"), pl.sum("lines"))


def retail(rows: int = datasets.RETAIL_ROWS, top: int = 10, speed: float | None = None) -> int:
    """Replay the synthetic Online Retail II log and keep revenue by StockCode."""
    with LocalBroker() as broker:
        print(f"embedded broker at {broker.bootstrap_servers}")
        Admin(broker.bootstrap_servers).create_topic("transactions", partitions=3)
        log = datasets.online_retail(rows=rows)
        pace = "as fast as possible" if speed is None else f"at {speed:g}x"
        print(f"replaying {log.height:,} rows of the synthetic Online Retail II log {pace}")
        totals = None
        seen = 0
        with (
            Consumer(
                broker.bootstrap_servers, topics=["transactions"], offset="earliest"
            ) as consumer,
            replay(
                log,
                "transactions",
                broker.bootstrap_servers,
                time_column="InvoiceDate",
                speed=speed,
                key="StockCode",
                config={"compression.type": "zstd"},
            ) as r,
        ):
            shown = time.monotonic()
            while True:
                frame = consumer.poll_frame(max_rows=500_000, timeout=0.5)
                if frame is not None:
                    totals = _running_revenue(totals, frame)
                    seen += frame.height
                p = r.progress
                if time.monotonic() - shown >= 1.0 and totals is not None:
                    shown = time.monotonic()
                    print(
                        f"  {p.rows_delivered:,} sent, {seen:,} consumed, event time {p.event_time}"
                    )
                if p.done and seen >= p.rows_delivered:
                    break
            report = r.wait()
        print(
            f"sent {report.rows_delivered:,} rows in {report.messages:,} messages in "
            f"{report.elapsed:.2f}s ({report.rows_per_second:,.0f} rows/s); consumed {seen:,}"
        )
        if totals is not None:
            print(f"\nrevenue by StockCode (top {top}):")
            print(totals.sort("revenue", descending=True).head(top))
        return 0 if seen == report.rows_delivered == log.height else 1


def sensors(rows: int = 60, speed: float = 20.0) -> int:
    """Replay IoT temperature readings (one every 2 s) and print them as they arrive."""
    with LocalBroker() as broker:
        print(f"embedded broker at {broker.bootstrap_servers}")
        Admin(broker.bootstrap_servers).create_topic("sensors", partitions=1)
        readings = datasets.sensors(rows=rows, period=2.0)
        print(f"replaying {rows} readings taken every 2 s, at {speed:g}x")
        seen = 0
        with (
            Consumer(broker.bootstrap_servers, topics=["sensors"], offset="earliest") as consumer,
            replay(
                readings, "sensors", broker.bootstrap_servers, time_column="timestamp", speed=speed
            ) as r,
        ):
            while True:
                frame = consumer.poll_frame(timeout=0.5)
                if frame is not None:
                    seen += frame.height
                    for row in frame.iter_rows(named=True):
                        bar = "#" * (row["temp1"] - 15)
                        print(
                            f"  {row['timestamp']}  temp1 {row['temp1']:2d}  temp2 {row['temp2']:2d}  {bar}"
                        )
                p = r.progress
                if p.done and seen >= p.rows_delivered:
                    break
            report = r.wait()
        print(
            f"{seen} readings consumed; {report.rows_delivered} sent, max lag {report.max_lag * 1000:.1f} ms"
        )
        return 0 if seen == rows else 1
