"""Produce and consume the 1,067,371-row retail frame through one LocalBroker:
tskafka against what users write by hand with confluent-kafka, in one run.

    python benchmarks/bench_core.py [--rows N] [--repeat 3] [--peer-rows 200000]

Prints rows/s (median of --repeat runs), the CPU time of the whole process
per run (broker, librdkafka threads and Python together; steadier than wall
time on a shared machine) and ratios to the peers. The slow per-row peers run
on the first --peer-rows rows: their rate does not depend on the count.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterator

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


def ipc_payloads(table: pa.Table, rows: int = 5_000) -> Iterator[bytes]:
    """`table` as Arrow IPC streams of `rows` rows each, written by pyarrow."""
    for batch in table.to_batches(max_chunksize=rows):
        sink = io.BytesIO()
        with pyarrow.ipc.new_stream(sink, batch.schema) as w:
            w.write_batch(batch)
        yield sink.getvalue()


def read_tskafka(bootstrap: str, topic: str, n: int) -> None:
    """Reads `n` rows of `topic` into Polars, as one frame where it can."""
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        got = 0
        while got < n:
            # Like the peer, ask for what is left: a frame then ends
            # at the last row instead of after a quiet spell.
            f = c.poll_frame(max_rows=n - got, timeout=10)
            assert f is not None, f"stalled at {got}"
            got += f.height


def read_confluent(bootstrap: str, topic: str, n: int) -> None:
    """confluent-kafka + pyarrow.ipc: `n` rows of Arrow IPC messages into one Table."""
    import confluent_kafka as ck

    # The same fetch settings tskafka uses by default.
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                     "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5,
                     "max.partition.fetch.bytes": 16 << 20, "fetch.max.bytes": 4 << 20})
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


def median_rate(rows: int, run: Callable[[], None], repeat: int) -> tuple[float, float]:
    """rows/s of the median wall time, and the median CPU seconds per run."""
    times, cpu = [], []
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return rows / statistics.median(times), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=datasets.RETAIL_ROWS)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peer-rows", type=int, default=200_000)
    ap.add_argument("--bootstrap", help="an existing cluster instead of a LocalBroker")
    ap.add_argument("--quick", action="store_true",
                    help="only the paths the targets compare (no key/timestamp variants, no pandas loop)")
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
    cpu: dict[str, float] = {}
    topics: dict[str, str] = {}
    wire_bytes: dict[str, int] = {}
    producer = tk.Producer(bootstrap)

    def tk_send(label: str, **kw) -> None:
        def run() -> None:
            topics[label] = fresh_topic()
            wire_bytes[label] = producer.send(topics[label], retail, **kw).bytes
        results[label], cpu[label] = median_rate(n, run, args.repeat)

    tk_send("tskafka arrow", format="arrow")
    if not args.quick:
        tk_send("tskafka arrow key+ts", format="arrow", key="StockCode", timestamp="InvoiceDate")
    tk_send("tskafka json", format="json")
    if not args.quick:
        tk_send("tskafka json key+ts", format="json", key="StockCode", timestamp="InvoiceDate")
        tk_send("tskafka json schema_header", format="json", schema_header=True)
        tk_send("tskafka json 100 rows/msg", format="json", rows_per_message=100)

    # Peer 1: per-row json.dumps + produce (the common tutorial loop).
    def per_row() -> None:
        p = ck.Producer(conf)
        topic = fresh_topic()
        for rec in pandas_df.to_dict("records"):
            rec["InvoiceDate"] = rec["InvoiceDate"].isoformat()
            produce(p, topic, json.dumps(rec).encode())
        p.flush()

    results["confluent per-row json"], cpu["confluent per-row json"] = median_rate(len(pandas_df), per_row, 1)

    # Not a peer: the same loop with the JSON already encoded, so only the
    # per-message cost of librdkafka and the broker is left (a floor for one
    # row per message through this client and broker).
    encoded = []
    for rec in pandas_df.to_dict("records"):
        rec["InvoiceDate"] = rec["InvoiceDate"].isoformat()
        encoded.append(json.dumps(rec).encode())

    def produce_only() -> None:
        p = ck.Producer(conf)
        topic = fresh_topic()
        for payload in encoded:
            produce(p, topic, payload)
        p.flush()

    results["confluent produce only (pre-encoded)"], cpu["confluent produce only (pre-encoded)"] = (
        median_rate(len(pandas_df), produce_only, 1))

    # Peer 2: the pandas 10-row-chunk to_dict() JSON loop (no sleeps).
    def chunks() -> None:
        p = ck.Producer(conf)
        topic = fresh_topic()
        df = pandas_df.assign(InvoiceDate=pandas_df["InvoiceDate"].astype(str))
        for start in range(0, len(df), 10):
            produce(p, topic, json.dumps(df.iloc[start:start + 10].to_dict()).encode())
        p.flush()

    if not args.quick:
        results["pandas 10-row chunks json"], cpu["pandas 10-row chunks json"] = median_rate(len(pandas_df), chunks, 1)

    # Peer 3: pyarrow IPC batches of 5k rows through confluent-kafka.
    def ipc_by_hand() -> None:
        p = ck.Producer(conf)
        topics["pyarrow ipc"] = topic = fresh_topic()
        wire_bytes["pyarrow ipc"] = 0
        for payload in ipc_payloads(table):
            wire_bytes["pyarrow ipc"] += len(payload)
            produce(p, topic, payload)
        p.flush()

    results["confluent + pyarrow ipc"], cpu["confluent + pyarrow ipc"] = median_rate(n, ipc_by_hand, args.repeat)

    # Consuming.
    def tk_read(topic: str) -> Callable[[], None]:
        return lambda: read_tskafka(bootstrap, topic, n)

    def ck_read(topic: str) -> Callable[[], None]:
        return lambda: read_confluent(bootstrap, topic, n)

    # The two Arrow reads take turns (A B, B A, ...): whichever runs right
    # after a large allocation pays for fresh memory, so neither always does.
    reads = {"read tskafka -> polars (arrow)": tk_read(topics["tskafka arrow"]),
             "read confluent + pyarrow": ck_read(topics["pyarrow ipc"])}
    runs: dict[str, list[tuple[float, float]]] = {label: [] for label in reads}
    for i in range(args.repeat):
        for label in list(reads)[:: 1 if i % 2 == 0 else -1]:
            runs[label].append(median_rate(n, reads[label], 1))
    for label, measured in runs.items():
        results[label] = statistics.median(rate for rate, _ in measured)
        cpu[label] = statistics.median(seconds for _, seconds in measured)
    results["read tskafka -> polars (json)"], cpu["read tskafka -> polars (json)"] = median_rate(n, tk_read(topics["tskafka json"]), args.repeat)

    # The fixed cost inside each read: joining the group and the first fetch.
    def first_message(topic: str) -> float:
        started = time.perf_counter()
        with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
            assert c.poll_frame(max_rows=1, timeout=10) is not None
            return time.perf_counter() - started

    join = statistics.median(first_message(topics["tskafka arrow"]) for _ in range(args.repeat))
    read_seconds = n / results["read tskafka -> polars (arrow)"]
    print(f"\ntskafka consumer, subscribe to first row: {join * 1000:.0f} ms (median); "
          f"the arrow read without it: {n / (read_seconds - join):,.0f} rows/s")

    width = max(map(len, results))
    print(f"\n{'path':<{width}}  {'rows/s':>12}  {'CPU s/run':>9}  {'rows per CPU s':>14}")
    for label, rate in results.items():
        rows = len(pandas_df) if label.startswith(("confluent per-row", "pandas", "confluent produce")) else n
        print(f"{label:<{width}}  {rate:>12,.0f}  {cpu[label]:>9.3f}  {rows / cpu[label]:>14,.0f}")
    print("\npayload bytes: " + ", ".join(f"{k} {v:,}" for k, v in wire_bytes.items()))
    r = results
    print("\nratios (wall time; CPU time in brackets)")

    def ratio(a: str, b: str, note: str = "", rows_a: int = n, rows_b: int = n) -> None:
        if a in r and b in r:
            by_cpu = (rows_a / cpu[a]) / (rows_b / cpu[b])
            print(f"  {a} vs {b}: {r[a] / r[b]:.2f}x ({by_cpu:.2f}x) {note}")

    peer = len(pandas_df)
    ratio("tskafka json", "confluent per-row json", "(target >= 20x)", rows_b=peer)
    ratio("confluent produce only (pre-encoded)", "confluent per-row json", "(no JSON work at all)", rows_a=peer, rows_b=peer)
    ratio("tskafka json schema_header", "confluent per-row json", rows_b=peer)
    ratio("tskafka json", "pandas 10-row chunks json", rows_b=peer)
    ratio("tskafka json 100 rows/msg", "confluent per-row json", rows_b=peer)
    ratio("tskafka arrow", "confluent + pyarrow ipc", "(target >= 1.0x)")
    ratio("tskafka arrow key+ts", "confluent + pyarrow ipc")
    ratio("read tskafka -> polars (arrow)", "read confluent + pyarrow", "(target >= 1.0x)")
    if broker is not None:
        broker.close()


if __name__ == "__main__":
    main()
