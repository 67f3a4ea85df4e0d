"""JSON with one row per message, the common case: the whole Kafka read into
Polars with tskafka against Polars' own ``str.json_decode`` of the same
messages already gathered in memory, in one run, the two taking turns.

    python benchmarks/bench_json.py [--rows 300000] [--reads 7]

The messages are the synthetic retail log, one ``json.dumps(record)`` per
message (``default=str``: datetimes as ``"2009-12-01 07:45:00"``), written by
confluent-kafka. Prints each path's median rows/s and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid

import polars as pl
from bench_core import produce, read_tskafka

import tskafka as tk
from tskafka import datasets


def gather(bootstrap: str, topic: str, n: int) -> list[bytes]:
    import confluent_kafka as ck

    c = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
        }
    )
    c.subscribe([topic])
    out: list[bytes] = []
    while len(out) < n:
        out.extend(m.value() for m in c.consume(1000, timeout=10) if m.error() is None)
    c.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--reads", type=int, default=7)
    args = ap.parse_args()

    import confluent_kafka as ck

    broker = tk.LocalBroker()
    bootstrap = broker.bootstrap_servers
    tk.Admin(bootstrap).create_topic("json", partitions=1)
    retail = datasets.online_retail(rows=args.rows)
    n = retail.height
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for rec in retail.iter_rows(named=True):
        produce(p, "json", json.dumps(rec, default=str).encode())
    p.flush()
    del p
    texts = pl.Series("value", [v.decode() for v in gather(bootstrap, "json", n)])

    def polars_decode() -> None:
        frame = texts.str.json_decode().struct.unnest()
        assert frame.height == n

    reads = {
        "tskafka Kafka read -> polars": lambda: read_tskafka(bootstrap, "json", n),
        "polars str.json_decode (in memory)": polars_decode,
        "tskafka read_topic -> polars": lambda: tk.read_topic("json", bootstrap, format="json"),
    }
    wall: dict[str, list[float]] = {label: [] for label in reads}
    for i in range(args.reads):
        for label in list(reads)[:: 1 if i % 2 == 0 else -1]:
            started = time.perf_counter()
            reads[label]()
            wall[label].append(time.perf_counter() - started)
    print(f"retail, one JSON row per message: {n:,} rows, {args.reads} runs each, median:")
    for label in reads:
        print(f"  {label:<36} {n / statistics.median(wall[label]):>12,.0f} rows/s")
    tk_wall, pl_wall, topic_wall = (statistics.median(wall[label]) for label in reads)
    print(f"  tskafka Consumer vs polars: {pl_wall / tk_wall:.2f}x (goal >= 1.0x)")
    print(f"  tskafka read_topic vs polars: {pl_wall / topic_wall:.2f}x")
    broker.close()


if __name__ == "__main__":
    main()
