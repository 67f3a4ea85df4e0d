"""Replay the full retail CSV flat out (speed=None): tskafka against the
pandas-chunks-as-JSON tutorial loop (kafka-python, no sleeps), on one
LocalBroker, in one run; then peak memory replaying a CSV ten times larger.

    python benchmarks/bench_replay.py [--repeat 3] [--peer-rows 100000] [--big 10]

Each replay runs in a child process, which reports its rows/s and peak RSS,
so memory figures are the sender's own (the broker lives in this process).
Prints medians of --repeat runs and the ratio to the peer. The peer runs on
the first --peer-rows rows: its rate does not depend on the count.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import tskafka as tk
from tskafka import datasets


def child_tskafka(path: str, topic: str, bootstrap: str) -> dict:
    started = time.perf_counter()
    report = tk.replay(
        path, topic, bootstrap, time_column="InvoiceDate", speed=None,
        config={"compression.type": "zstd"},
    ).wait()
    seconds = time.perf_counter() - started
    return {"rows": report.rows_delivered, "seconds": seconds}


def child_tutorial(path: str, topic: str, bootstrap: str, rows: int) -> dict:
    """What the tutorials do: read the CSV with pandas, send 10-row chunks as JSON."""
    import pandas as pd
    from kafka import KafkaProducer

    started = time.perf_counter()
    df = pd.read_csv(path, nrows=rows, encoding="latin-1")
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        value_serializer=lambda v: json.dumps(v).encode("utf-8"),
        compression_type=None,
    )
    sent = 0
    for i in range(0, len(df), 10):
        chunk = df.iloc[i : i + 10]
        producer.send(topic, value=chunk.to_dict())
        sent += len(chunk)
    producer.flush()
    producer.close()
    return {"rows": sent, "seconds": time.perf_counter() - started}


def peak_rss_mb() -> float:
    """This process's peak RSS since its exec (ru_maxrss would count the
    parent's memory at fork time)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peer-rows", type=int, default=100_000)
    ap.add_argument("--big", type=int, default=10, help="size of the large CSV, in retail logs (0: skip)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        kind, path, topic, bootstrap, *rest = args.child
        if kind == "tskafka":
            result = child_tskafka(path, topic, bootstrap)
        else:
            result = child_tutorial(path, topic, bootstrap, int(rest[0]))
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return

    workdir = tempfile.mkdtemp(prefix="tskafka-bench-")
    retail_csv = os.path.join(workdir, "retail.csv")
    log = datasets.online_retail()
    datasets.save(log, retail_csv)
    size_mb = os.path.getsize(retail_csv) / 2**20
    print(f"retail CSV: {log.height:,} rows, {size_mb:.0f} MiB")

    with tk.LocalBroker() as broker:
        bootstrap = broker.bootstrap_servers
        admin = tk.Admin(bootstrap)

        def fresh_topic() -> str:
            name = f"bench-{uuid.uuid4().hex[:8]}"
            admin.create_topic(name, partitions=3)
            return name

        ours = [run_child("tskafka", retail_csv, fresh_topic(), bootstrap) for _ in range(args.repeat)]
        assert all(r["rows"] == log.height for r in ours), ours
        ours_rate = statistics.median(r["rows"] / r["seconds"] for r in ours)
        ours_rss = statistics.median(r["peak_rss_mb"] for r in ours)
        peer = [
            run_child("tutorial", retail_csv, fresh_topic(), bootstrap, str(args.peer_rows))
            for _ in range(args.repeat)
        ]
        peer_rate = statistics.median(r["rows"] / r["seconds"] for r in peer)
        peer_rss = statistics.median(r["peak_rss_mb"] for r in peer)
        print(f"tskafka replay, speed=None:        {ours_rate:>12,.0f} rows/s  peak RSS {ours_rss:6.0f} MiB")
        print(
            f"pandas 10-row chunks as JSON:      {peer_rate:>12,.0f} rows/s  peak RSS {peer_rss:6.0f} MiB"
            f"  (first {args.peer_rows:,} rows)"
        )
        print(f"ratio: {ours_rate / peer_rate:.1f}x")

        if args.big:
            big_csv = os.path.join(workdir, "retail-big.csv")
            with open(big_csv, "wb") as out, open(retail_csv, "rb") as src:
                body = src.read()
                out.write(body)
                header_end = body.index(b"\n") + 1
                for _ in range(args.big - 1):
                    out.write(body[header_end:])
            del body
            big_mb = os.path.getsize(big_csv) / 2**20
            big = run_child("tskafka", big_csv, fresh_topic(), bootstrap)
            assert big["rows"] == log.height * args.big, big
            print(
                f"tskafka replay of a {args.big}x CSV ({big['rows']:,} rows, {big_mb:,.0f} MiB): "
                f"{big['rows'] / big['seconds']:,.0f} rows/s, peak RSS {big['peak_rss_mb']:.0f} MiB "
                f"(1x: {ours_rss:.0f} MiB)"
            )
            os.remove(big_csv)
    os.remove(retail_csv)
    os.rmdir(workdir)


if __name__ == "__main__":
    main()
