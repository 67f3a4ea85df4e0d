"""The ``tskafka`` command line."""

from __future__ import annotations

import argparse
import sys
import time

from . import Admin, Consumer, LocalBroker, Producer, TsKafkaError, datasets


def _demo(args: argparse.Namespace) -> int:
    with LocalBroker() as broker:
        print(f"embedded broker at {broker.bootstrap_servers}")
        Admin(broker.bootstrap_servers).create_topic("transactions", partitions=3)
        retail = datasets.online_retail(rows=args.rows)
        print(f"synthetic Online Retail II log: {retail.height:,} rows")
        with Producer(broker.bootstrap_servers, {"compression.type": "zstd"}) as producer:
            report = producer.send("transactions", retail, key="StockCode", timestamp="InvoiceDate")
        print(
            f"sent {report.rows:,} rows in {report.messages:,} messages "
            f"({report.rows_per_second:,.0f} rows/s)"
        )
        frames = []
        started = time.perf_counter()
        with Consumer(broker.bootstrap_servers, topics=["transactions"], offset="earliest") as c:
            rows = 0
            while rows < report.rows:
                frame = c.poll_frame(max_rows=500_000, timeout=5.0)
                if frame is None:
                    break
                frames.append(frame)
                rows += frame.height
        took = time.perf_counter() - started
        print(f"read back {rows:,} rows in {took:.2f}s (group join included)")
        import polars as pl

        top = datasets.revenue_by_stock_code(pl.concat(frames), top=args.top)
        print(f"\nrevenue by StockCode (top {args.top}):")
        print(top)
        return 0 if rows == report.rows else 1


def _broker(args: argparse.Namespace) -> int:
    with LocalBroker(port=args.port) as broker:
        print(f"tskafka broker listening on {broker.bootstrap_servers} (Ctrl+C stops)", flush=True)
        try:
            while True:
                time.sleep(0.2)
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tskafka", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="send the retail log through an embedded broker")
    demo.add_argument("--rows", type=int, default=datasets.RETAIL_ROWS)
    demo.add_argument("--top", type=int, default=10)
    demo.set_defaults(run=_demo)
    broker = sub.add_parser("broker", help="run the embedded broker in the foreground")
    broker.add_argument("--port", type=int, default=9092)
    broker.set_defaults(run=_broker)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except TsKafkaError as e:
        print(f"tskafka: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
