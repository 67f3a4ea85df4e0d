"""Memory of a long background read: millions of small messages through a
BackgroundConsumer feeding a RunningAggregate, sampling this process's RSS.

    python benchmarks/bench_memory.py [--messages 3000000] [--rows-per-message 1]

The broker runs in its own process (``python -m tskafka broker``) and the
messages are sent from another, so the RSS sampled here (VmRSS every
~100k messages) is the reader's alone. Prints start, peak and end RSS and
the growth between 10% and 100% of the run.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import polars as pl
import tskafka as tk


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def produce(bootstrap: str, topic: str, messages: int, rows_per_message: int) -> None:
    """Sends `messages` JSON messages of `rows_per_message` rows, in chunks."""
    producer = tk.Producer(bootstrap, {"linger.ms": 20})
    rng = np.random.default_rng(1)
    rows = messages * rows_per_message
    chunk = 500_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        frame = pl.DataFrame(
            {
                "i": np.arange(start, start + n, dtype=np.int64),
                "sensor": rng.choice(np.array([f"s{k}" for k in range(50)]), n),
                "value": rng.random(n),
            }
        )
        producer.send(topic, frame, format="json", rows_per_message=rows_per_message, wait=False)
    report = producer.flush()
    assert report.rows == rows, report
    producer.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3_000_000)
    parser.add_argument("--rows-per-message", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument(
        "--produce", nargs=2, metavar=("BOOTSTRAP", "TOPIC"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.produce:
        produce(*args.produce, args.messages, args.rows_per_message)
        return

    port = free_port()
    broker = subprocess.Popen(
        [sys.executable, "-m", "tskafka", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert str(port) in broker.stdout.readline()
        bootstrap = f"127.0.0.1:{port}"
        topic = "memory"
        tk.Admin(bootstrap).create_topic(topic, partitions=args.partitions)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--messages",
                str(args.messages),
                "--rows-per-message",
                str(args.rows_per_message),
                "--produce",
                bootstrap,
                topic,
            ],
            check=True,
        )
        print(
            f"produced {args.messages:,} messages in {time.perf_counter() - started:.1f}s",
            flush=True,
        )

        rows = args.messages * args.rows_per_message
        every = 100_000 * args.rows_per_message
        aggregate = tk.RunningAggregate(
            by="sensor", aggs={"n": pl.len(), "total": pl.col("value").sum()}
        )
        samples: list[tuple[int, float]] = []
        seen = 0
        done = threading.Event()

        def on_frame(frame: pl.DataFrame) -> None:
            nonlocal seen
            aggregate.update(frame)
            before = seen
            seen += frame.height
            if seen // every != before // every or seen >= rows:
                samples.append((seen, rss_mib()))
            if seen >= rows:
                done.set()

        consumer = tk.Consumer(bootstrap, topics=[topic], offset="earliest")
        start_rss = rss_mib()
        started = time.perf_counter()
        bg = consumer.start(on_frame, max_rows=10_000)
        if not done.wait(timeout=3600):
            raise SystemExit(f"only {seen:,} of {rows:,} rows arrived")
        seconds = time.perf_counter() - started
        bg.stop()
        consumer.close()
        result = aggregate.result()
        assert int(result["n"].sum()) == rows, result

        peak = max(r for _, r in samples)
        at_10 = next(r for n, r in samples if n >= rows // 10)
        end = samples[-1][1]
        print(
            f"consumed {rows:,} rows ({args.messages:,} messages) in {seconds:.1f}s "
            f"({args.messages / seconds:,.0f} messages/s)"
        )
        print(
            f"RSS MiB: start {start_rss:.0f}, at 10% {at_10:.0f}, peak {peak:.0f}, end {end:.0f}; "
            f"growth 10%->100%: {end - at_10:+.1f} MiB"
        )
        print(
            "samples (messages, MiB):",
            " ".join(f"{n // args.rows_per_message}:{r:.0f}" for n, r in samples),
        )
    finally:
        broker.terminate()
        broker.wait(timeout=30)


if __name__ == "__main__":
    main()
