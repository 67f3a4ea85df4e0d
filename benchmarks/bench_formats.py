"""Reads of topics other producers write, from one LocalBroker, in one run:

- raw: N small messages (key + ~60-byte value) read as key/value/metadata
  columns: tskafka format='raw' into Polars (a Consumer, and read_topic,
  which sends its own fetches), kafkarrow's ConsumerManager
  (a Rust client returning raw messages as Arrow) and confluent-kafka's
  consume() (messages in a list), in messages/s;
- CSV lines: one sensor reading per message (`f"{datetime},{t1},{t2}"`),
  tskafka format='csv' into a typed Polars frame (Consumer, read_topic)
  against Polars' own pl.read_csv of the same lines already gathered in memory.

    python benchmarks/bench_formats.py [--messages 300000] [--reads 5]

Prints each path's median rate and the ratios. Each read includes joining a
group (or assigning) and fetching from the broker, except pl.read_csv.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
import uuid
from datetime import datetime, timedelta

import polars as pl

import tskafka as tk

FETCH = {"fetch.wait.max.ms": 5, "max.partition.fetch.bytes": 16 << 20, "fetch.max.bytes": 4 << 20}


def sensor_lines(n: int) -> list[bytes]:
    rng = random.Random(1)
    start = datetime(2023, 3, 20, 12, 0, 0, 123456)
    return [
        f"{start + timedelta(milliseconds=i * 250 + rng.randrange(250))},"
        f"{round(rng.uniform(18, 30), 2)},{round(rng.uniform(18, 30), 2)}".encode()
        for i in range(n)
    ]


def fill(bootstrap: str, topic: str, values: list[bytes]) -> None:
    import confluent_kafka as ck

    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20})
    for v in values:
        while True:
            try:
                p.produce(topic, key=b"key", value=v)
                break
            except BufferError:
                p.poll(0.01)
    p.flush()


def read_tskafka(bootstrap: str, topic: str, n: int, **kwargs) -> None:
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", **kwargs) as c:
        got = 0
        while got < n:
            f = c.poll_frame(max_rows=n - got, timeout=10)
            assert f is not None, f"stalled at {got}"
            got += f.height


def read_confluent(bootstrap: str, topic: str, n: int) -> None:
    import confluent_kafka as ck

    c = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            **FETCH,
        }
    )
    c.subscribe([topic])
    got = []
    while len(got) < n:
        got.extend((m.key(), m.value()) for m in c.consume(min(10_000, n - len(got)), timeout=10))
    c.close()


def read_kafkarrow(bootstrap: str, topic: str, n: int) -> None:
    import kafkarrow

    manager = kafkarrow.ConsumerManager(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            **{k: str(v) for k, v in FETCH.items()},
        },
        [kafkarrow.SourceTopic.from_earliest(topic)],
        100_000,
    )
    got = 0
    deadline = time.monotonic() + 60
    while got < n:
        assert time.monotonic() < deadline, f"kafkarrow stalled at {got}"
        batch = manager.poll(100)
        got += batch.num_rows


def timed(label: str, run, failed: dict[str, str]) -> float | None:
    """Seconds `run` took, or None (and why, in `failed`) if it could not run."""
    started = time.perf_counter()
    try:
        run()
    except Exception as e:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
        failed[label] = f"{type(e).__name__}: {e}"
        return None
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=300_000)
    ap.add_argument("--reads", type=int, default=5)
    args = ap.parse_args()
    n = args.messages

    broker = tk.LocalBroker()
    bootstrap = broker.bootstrap_servers
    tk.Admin(bootstrap).create_topic("lines", partitions=1)
    lines = sensor_lines(n)
    fill(bootstrap, "lines", lines)

    paths = [
        ("tskafka raw -> polars", lambda: read_tskafka(bootstrap, "lines", n, format="raw")),
        ("tskafka read_topic raw", lambda: tk.read_topic("lines", bootstrap, format="raw")),
        ("kafkarrow (arrow)", lambda: read_kafkarrow(bootstrap, "lines", n)),
        ("confluent consume()", lambda: read_confluent(bootstrap, "lines", n)),
    ]
    raw: dict[str, list[float]] = {label: [] for label, _ in paths}
    failed: dict[str, str] = {}
    for i in range(args.reads):
        # The paths take turns, in alternating order.
        for label, run in paths[:: 1 if i % 2 == 0 else -1]:
            if label not in failed and (t := timed(label, run, failed)) is not None:
                raw[label].append(t)
    print(
        f"raw read, {n:,} messages of ~{sum(map(len, lines)) // n} bytes, {args.reads} reads, median:"
    )
    rates = {label: n / statistics.median(t) for label, t in raw.items() if t}
    for label, why in failed.items():
        print(f"  {label:<24} could not run: {why}")
    for label, rate in rates.items():
        print(f"  {label:<24} {rate:>12,.0f} messages/s")
    ours = [label for label in rates if label.startswith("tskafka")]
    for mine in ours:
        for label, rate in rates.items():
            if label not in ours:
                print(f"  {mine} / {label}: {rates[mine] / rate:.2f}x")

    columns = ["timestamp", "temp1", "temp2"]
    text = b"\n".join(lines)
    csv: dict[str, list[float]] = {
        "tskafka csv -> polars": [],
        "tskafka read_topic csv": [],
        "pl.read_csv (in memory)": [],
    }
    for _ in range(args.reads):
        started = time.perf_counter()
        read_tskafka(bootstrap, "lines", n, format="csv", columns=columns)
        csv["tskafka csv -> polars"].append(time.perf_counter() - started)
        started = time.perf_counter()
        got = tk.read_topic("lines", bootstrap, format="csv", new_columns=columns)
        csv["tskafka read_topic csv"].append(time.perf_counter() - started)
        assert got.height == n and got.columns[:3] == columns
        started = time.perf_counter()
        frame = pl.read_csv(
            io.BytesIO(text), has_header=False, new_columns=columns, try_parse_dates=True
        )
        csv["pl.read_csv (in memory)"].append(time.perf_counter() - started)
        assert frame.height == n
    print(f"CSV lines, one reading per message, {args.reads} reads, median:")
    rates = {label: n / statistics.median(t) for label, t in csv.items()}
    for label, rate in rates.items():
        print(f"  {label:<24} {rate:>12,.0f} rows/s")
    for label in ("tskafka csv -> polars", "tskafka read_topic csv"):
        print(f"  {label} / pl.read_csv: {rates[label] / rates['pl.read_csv (in memory)']:.2f}x")
    broker.close()


if __name__ == "__main__":
    main()
