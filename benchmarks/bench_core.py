"""Produce and consume the 1,067,371-row retail frame through one LocalBroker:
tskafka against what users write by hand with confluent-kafka, in one run.

    python benchmarks/bench_core.py [--rows N] [--repeat 3] [--peer-rows 200000]

Prints rows/s (median of --repeat runs) and ratios to the peers. The slow
per-row peers run on the first --peer-rows rows: their rate does not depend
on the count.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
import uuid
from collections.abc import Callable

import pyarrow as pa
import pyarrow.ipc

import tskafka as tk
from tskafka import datasets


def produce(p, topic: str, payload: bytes) -> None:
    """confluent-kafka's produce, waiting while its local queue is full."""
    while True:
        try:
            p.produce(topic, payload)
            break
        except BufferError:
            p.poll(0.01)
    p.poll(0)


def median_rate(rows: int, run: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return rows / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=datasets.RETAIL_ROWS)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peer-rows", type=int, default=200_000)
    ap.add_argument("--bootstrap", help="an existing cluster instead of a LocalBroker")
    args = ap.parse_args()

    import confluent_kafka as ck

    broker = None if args.bootstrap else tk.LocalBroker()
    bootstrap = args.bootstrap or broker.bootstrap_servers
    admin = tk.Admin(bootstrap)
    retail = datasets.online_retail(rows=args.rows)
    n = retail.height
    table = retail.to_arrow()
    pandas_df = retail.head(args.peer_rows).to_pandas()
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
    print(f"retail frame: {n:,} rows; librdkafka {tk._tskafka.librdkafka_version}; "
          f"confluent-kafka {ck.version()[0]}")

    def fresh_topic() -> str:
        name = f"bench-{uuid.uuid4().hex[:8]}"
        admin.create_topic(name, partitions=3)
        return name

    results: dict[str, float] = {}
    topics: dict[str, str] = {}
    producer = tk.Producer(bootstrap)

    def tk_send(label: str, **kw) -> None:
        def run() -> None:
            topics[label] = fresh_topic()
            producer.send(topics[label], retail, **kw)
        results[label] = median_rate(n, run, args.repeat)

    tk_send("tskafka arrow", format="arrow")
    tk_send("tskafka arrow key+ts", format="arrow", key="StockCode", timestamp="InvoiceDate")
    tk_send("tskafka json", format="json")
    tk_send("tskafka json key+ts", format="json", key="StockCode", timestamp="InvoiceDate")
    tk_send("tskafka json 100 rows/msg", format="json", rows_per_message=100)

    # Peer 1: per-row json.dumps + produce (the common tutorial loop).
    def per_row() -> None:
        p = ck.Producer(conf)
        topic = fresh_topic()
        for rec in pandas_df.to_dict("records"):
            rec["InvoiceDate"] = rec["InvoiceDate"].isoformat()
            produce(p, topic, json.dumps(rec).encode())
        p.flush()

    results["confluent per-row json"] = median_rate(len(pandas_df), per_row, 1)

    # Peer 2: the pandas 10-row-chunk to_dict() JSON loop (no sleeps).
    def chunks() -> None:
        p = ck.Producer(conf)
        topic = fresh_topic()
        df = pandas_df.assign(InvoiceDate=pandas_df["InvoiceDate"].astype(str))
        for start in range(0, len(df), 10):
            produce(p, topic, json.dumps(df.iloc[start:start + 10].to_dict()).encode())
        p.flush()

    results["pandas 10-row chunks json"] = median_rate(len(pandas_df), chunks, 1)

    # Peer 3: pyarrow IPC batches of 5k rows through confluent-kafka.
    def ipc_by_hand() -> None:
        p = ck.Producer(conf)
        topics["pyarrow ipc"] = topic = fresh_topic()
        for batch in table.to_batches(max_chunksize=5_000):
            sink = io.BytesIO()
            with pyarrow.ipc.new_stream(sink, batch.schema) as w:
                w.write_batch(batch)
            produce(p, topic, sink.getvalue())
        p.flush()

    results["confluent + pyarrow ipc"] = median_rate(n, ipc_by_hand, args.repeat)

    # Consuming.
    def tk_read(topic: str) -> Callable[[], None]:
        def run() -> None:
            with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
                got = 0
                while got < n:
                    # Like the peer, ask for what is left: a frame then ends
                    # at the last row instead of after a quiet spell.
                    f = c.poll_frame(max_rows=n - got, timeout=10)
                    assert f is not None, f"stalled at {got}"
                    got += f.height
        return run

    def ck_read(topic: str) -> Callable[[], None]:
        def run() -> None:
            # The same fetch settings tskafka uses by default.
            c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                             "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5,
                             "max.partition.fetch.bytes": 16 << 20})
            c.subscribe([topic])
            tables, got = [], 0
            while got < n:
                # consume() waits out its timeout unless it gets all it asked for.
                for m in c.consume(min(1000, max(1, (n - got) // 5_000)), timeout=10):
                    t = pyarrow.ipc.open_stream(m.value()).read_all()
                    tables.append(t)
                    got += t.num_rows
            pa.concat_tables(tables).combine_chunks()
            c.close()
        return run

    results["read tskafka -> polars (arrow)"] = median_rate(n, tk_read(topics["tskafka arrow"]), args.repeat)
    results["read tskafka -> polars (json)"] = median_rate(n, tk_read(topics["tskafka json"]), args.repeat)
    results["read confluent + pyarrow"] = median_rate(n, ck_read(topics["pyarrow ipc"]), args.repeat)

    width = max(map(len, results))
    print(f"\n{'path':<{width}}  {'rows/s':>12}")
    for label, rate in results.items():
        print(f"{label:<{width}}  {rate:>12,.0f}")
    r = results
    print("\nratios")
    print(f"  json vs per-row loop        {r['tskafka json'] / r['confluent per-row json']:8.1f}x  (target >= 20x)")
    print(f"  json vs pandas chunks       {r['tskafka json'] / r['pandas 10-row chunks json']:8.1f}x")
    print(f"  json 100/msg vs per-row     {r['tskafka json 100 rows/msg'] / r['confluent per-row json']:8.1f}x")
    print(f"  arrow vs pyarrow by hand    {r['tskafka arrow'] / r['confluent + pyarrow ipc']:8.2f}x  (target >= 1.0x)")
    print(f"  arrow key+ts vs by hand     {r['tskafka arrow key+ts'] / r['confluent + pyarrow ipc']:8.2f}x")
    print(f"  read polars vs confluent    {r['read tskafka -> polars (arrow)'] / r['read confluent + pyarrow']:8.2f}x  (target >= 1.0x)")
    if broker is not None:
        broker.close()


if __name__ == "__main__":
    main()
