"""Read the 1,067,371-row retail frame back from one LocalBroker, again and
again in one process: tskafka into one Polars frame against confluent-kafka
with pyarrow.ipc into one Table, the two reads taking turns.

    python benchmarks/bench_read.py [--reads 12] [--rows N]

Prints each path's median rows/s (a consumer joining its group included),
its CPU time per read and the ratio. bench_core.py reads too, after its
sends; this is the read alone, with more runs for a steadier median.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench_core import ipc_payloads, produce, read_confluent, read_tskafka

import tskafka as tk
from tskafka import datasets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=12)
    ap.add_argument("--rows", type=int, default=datasets.RETAIL_ROWS)
    args = ap.parse_args()

    import confluent_kafka as ck

    broker = tk.LocalBroker()
    bootstrap = broker.bootstrap_servers
    admin = tk.Admin(bootstrap)
    retail = datasets.online_retail(rows=args.rows)
    n = retail.height
    for topic in ("tskafka", "pyarrow"):
        admin.create_topic(topic, partitions=3)
    tk.Producer(bootstrap).send("tskafka", retail)
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for payload in ipc_payloads(retail.to_arrow()):
        produce(p, "pyarrow", payload)
    p.flush()
    del p  # its connections close before the broker's

    reads = {"tskafka -> polars": lambda: read_tskafka(bootstrap, "tskafka", n),
             "confluent + pyarrow": lambda: read_confluent(bootstrap, "pyarrow", n)}
    wall: dict[str, list[float]] = {label: [] for label in reads}
    cpu: dict[str, list[float]] = {label: [] for label in reads}
    for i in range(args.reads):
        for label in list(reads)[:: 1 if i % 2 == 0 else -1]:
            started, cpu_started = time.perf_counter(), time.process_time()
            reads[label]()
            wall[label].append(time.perf_counter() - started)
            cpu[label].append(time.process_time() - cpu_started)
    print(f"retail frame: {n:,} rows, {args.reads} reads of each, median:")
    for label in reads:
        rates = ", ".join(f"{n / t / 1e6:.1f}M" for t in wall[label])
        print(f"  {label:<20} {n / statistics.median(wall[label]):>12,.0f} rows/s  "
              f"CPU {statistics.median(cpu[label]):.3f} s/read  ({rates})")
    tk_wall, ck_wall = (statistics.median(wall[label]) for label in reads)
    print(f"  tskafka vs confluent + pyarrow: {ck_wall / tk_wall:.2f}x")
    broker.close()


if __name__ == "__main__":
    main()
