"""Faults injected with librdkafka's mock cluster, and the embedded broker
killed, restarted or losing a topic under a producer, and consumers killed
mid-stream: every row is delivered exactly once or reported as failed (or,
for consumers, processed at least once), and nothing hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import polars as pl
import pytest
from helpers import free_port

import tskafka as tk
from tskafka import datasets
from tskafka.testing import MockCluster

PARTITIONS = 24  # the mock keeps 5 MiB per partition: spread the data out


def read_partitions(
    bootstrap: str,
    topic: str,
    rows: int,
    timeout: float = 60,
    partitions: int = PARTITIONS,
    repeats_allowed: bool = False,
) -> pl.DataFrame:
    frames, got = [], 0
    deadline = time.monotonic() + timeout
    with tk.Consumer(
        bootstrap,
        partitions=[(topic, p) for p in range(partitions)],
        offset="earliest",
        metadata=True,
    ) as c:
        while got < rows and time.monotonic() < deadline:
            f = c.poll_frame(max_rows=1_000_000, timeout=1.0)
            if f is not None:
                frames.append(f)
                got += f.height
        if repeats_allowed:
            while (f := c.poll_frame(max_rows=1_000_000, timeout=1.0)) is not None:
                frames.append(f)
        else:
            # Nothing more than what was sent arrives later (no duplicates in flight).
            extra = c.poll_frame(timeout=0.5)
            assert extra is None, extra
    return pl.concat(frames) if frames else pl.DataFrame()


def assert_exactly_once_in_key_order(back: pl.DataFrame, sent: pl.DataFrame) -> None:
    assert back.height == sent.height
    assert back["row"].n_unique() == sent.height
    assert back.drop(pl.selectors.starts_with("kafka_")).sort("row").equals(sent)
    # Per key, rows arrive in the order they were sent.
    ordered = (
        back.sort("kafka_partition", "kafka_offset", maintain_order=True)
        .group_by("StockCode", maintain_order=True)
        .agg(pl.col("row").diff().drop_nulls().min().alias("step"))
    )
    assert (ordered["step"].fill_null(1) > 0).all()


def assert_at_least_once_repeating_whole_messages(back: pl.DataFrame, sent: pl.DataFrame) -> int:
    """librdkafka's mock cluster drops a retried produce request only for a
    transactional producer (``rd_kafka_mock_validate_records``): a request it
    appended just before a broker went down, its answer lost, is appended
    again when the producer retries. So: every row, first copies exactly once
    in key order, and each later copy in a message that repeats, whole, one
    message stored before it in the same partition. Returns the rows repeated."""
    back = back.with_row_index("at")
    first = back.sort("kafka_partition", "kafka_offset", "at").unique(
        "row", keep="first", maintain_order=True
    )
    assert_exactly_once_in_key_order(first.drop("at"), sent)
    again = back.filter(~pl.col("at").is_in(first["at"].implode()))
    message = ["kafka_partition", "kafka_offset"]
    # No message mixes first copies with repeats.
    assert (
        again.select(message).unique().join(first.select(message).unique(), on=message).height == 0
    )
    pairs = again.join(first, on="row", suffix="_first")
    assert pairs.height == again.height
    assert (pairs["kafka_partition"] == pairs["kafka_partition_first"]).all()
    assert (pairs["kafka_offset"] > pairs["kafka_offset_first"]).all()
    # Each repeated message holds the rows of one earlier message, all of them.
    sizes = first.group_by(message).len("size_first")
    copies = pairs.group_by(message).agg(
        pl.len().alias("size"),
        pl.col("kafka_offset_first").first(),
        pl.col("kafka_offset_first").n_unique().alias("n"),
    )
    copies = copies.join(sizes, left_on=["kafka_partition", "kafka_offset_first"], right_on=message)
    assert (copies["n"] == 1).all() and (copies["size"] == copies["size_first"]).all()
    columns = [c for c in sent.columns if c != "row"]
    assert pairs.select(columns).equals(
        pairs.select([pl.col(f"{c}_first").alias(c) for c in columns])
    )
    return again.height


@pytest.fixture
def cluster():
    with MockCluster(brokers=3) as c:
        c.create_topic("retail", partitions=PARTITIONS, replication_factor=3)
        yield c


def test_million_rows_survive_a_broker_outage(cluster):
    """No row lost. Exactly once across an outage is tested on the embedded
    broker, which checks producer sequences as Kafka does
    (test_send_across_a_broker_restart_on_file_storage)."""
    sent = (
        datasets.online_retail(rows=1_000_000)
        .with_row_index("row")
        .with_columns(pl.col("row").cast(pl.Int64))
    )
    producer = tk.Producer(cluster.bootstrap_servers, {"compression.type": "zstd"})
    producer.send("retail", sent, key="StockCode", wait=False)
    cluster.broker_down(1)
    time.sleep(3)
    cluster.broker_up(1)
    report = producer.flush()
    assert (report.rows, report.rows_pending) == (1_000_000, 0)
    back = read_partitions(cluster.bootstrap_servers, "retail", 1_000_000, repeats_allowed=True)
    repeated = assert_at_least_once_repeating_whole_messages(back, sent)
    print(f"{repeated} rows appended twice by the mock cluster")


def test_retriable_produce_errors_are_retried_without_duplicates(cluster):
    sent = (
        datasets.online_retail(rows=200_000)
        .with_row_index("row")
        .with_columns(pl.col("row").cast(pl.Int64))
    )
    cluster.request_errors(
        "Produce",
        ["NotLeaderForPartition", "RequestTimedOut", "NotEnoughReplicas", "LeaderNotAvailable"] * 5,
    )
    producer = tk.Producer(cluster.bootstrap_servers, {"compression.type": "zstd"})
    report = producer.send("retail", sent, key="StockCode", rows_per_message=500)
    assert report.rows == 200_000
    assert_exactly_once_in_key_order(
        read_partitions(cluster.bootstrap_servers, "retail", 200_000), sent
    )


@pytest.mark.parametrize("error", ["MessageSizeTooLarge", "TopicAuthorizationFailed"])
def test_non_retriable_error_counts_the_rows_lost(cluster, error):
    sent = (
        datasets.online_retail(rows=50_000)
        .with_row_index("row")
        .with_columns(pl.col("row").cast(pl.Int64))
    )
    cluster.request_errors("Produce", [error])
    producer = tk.Producer(cluster.bootstrap_servers, {"compression.type": "zstd", "linger.ms": 0})
    with pytest.raises(tk.ProduceError) as info:
        producer.send("retail", sent, rows_per_message=1_000)
    e = info.value
    assert e.rows_failed > 0
    assert e.rows_failed + e.rows_delivered == 50_000
    assert str(e.rows_failed) in str(e)
    back = read_partitions(cluster.bootstrap_servers, "retail", e.rows_delivered, timeout=20)
    # What was reported delivered is exactly what the topic holds.
    assert back.height == e.rows_delivered
    assert back["row"].n_unique() == back.height


def test_poll_and_close_with_every_broker_down_return_in_time(cluster):
    producer = tk.Producer(cluster.bootstrap_servers)
    producer.send("retail", pl.DataFrame({"x": range(100)}))
    c = tk.Consumer(
        cluster.bootstrap_servers,
        partitions=[("retail", p) for p in range(PARTITIONS)],
        offset="earliest",
    )
    got = 0
    deadline = time.monotonic() + 20
    while got < 100 and time.monotonic() < deadline:
        f = c.poll_frame(timeout=1.0)
        got += 0 if f is None else f.height
    assert got == 100
    for b in (1, 2, 3):
        cluster.broker_down(b)
    for _ in range(3):
        started = time.monotonic()
        try:
            assert c.poll_frame(timeout=1.0) is None
        except tk.KafkaError as e:
            assert "down" in str(e) or "transport" in str(e).lower(), e
        assert time.monotonic() - started < 2.0
    # librdkafka would wait ~45 s for the dead brokers; close() gives it 5 s.
    started = time.monotonic()
    c.close()
    assert time.monotonic() - started < 7.0
    assert c.closed


def test_send_to_a_dead_cluster_fails_within_the_timeout():
    with MockCluster(brokers=1) as c:
        c.create_topic("t", partitions=1)
        producer = tk.Producer(c.bootstrap_servers, {"message.timeout.ms": 2000})
        producer.send("t", pl.DataFrame({"x": [1]}))
        c.broker_down(1)
        started = time.monotonic()
        try:
            producer.send("t", pl.DataFrame({"x": range(10)}), rows_per_message=5, timeout=3)
        except tk.TimeoutError:
            # Still in flight at the timeout: librdkafka fails messages to a
            # broker that went down 2 to ~14 s after message.timeout.ms here.
            assert time.monotonic() - started < 4
            with pytest.raises(tk.ProduceError) as info:
                producer.flush()
            assert info.value.rows_failed == 10
            assert time.monotonic() - started < 30
        except tk.ProduceError as e:
            assert e.rows_failed == 10
            assert time.monotonic() - started < 4
        else:
            pytest.fail("a send to a dead cluster succeeded")


def test_a_full_queue_to_a_dead_cluster_stops_at_the_timeout():
    """Queueing waits for room only until the send's timeout; the rows
    queued are then reported by flush(), the others were never sent."""
    with MockCluster(brokers=1) as c:
        c.create_topic("t", partitions=1)
        producer = tk.Producer(
            c.bootstrap_servers,
            {"message.timeout.ms": 60_000, "queue.buffering.max.messages": 100},
        )
        producer.send("t", pl.DataFrame({"x": [1]}))
        c.broker_down(1)
        started = time.monotonic()
        with pytest.raises(tk.TimeoutError) as info:
            producer.send("t", pl.DataFrame({"x": range(1_000)}), format="json", timeout=2)
        assert time.monotonic() - started < 3
        assert "100 rows were queued (flush() reports them), the other 900 were not sent" in str(
            info.value
        )
        assert producer.in_flight == 100
        c.broker_up(1)
        assert producer.flush(timeout=30).rows == 100


# --- the embedded broker as its own process: killed, deleted topics, killed consumers


class BrokerProcess:
    """`python -m tskafka broker` on a fixed port and storage file, so it can be
    killed (or stopped) and started again where it was."""

    def __init__(self, storage: str) -> None:
        self.port = free_port()
        self.storage = storage
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tskafka",
                    "broker",
                    "--port",
                    str(self.port),
                    "--storage",
                    self.storage,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "TSKAFKA_BOOTSTRAP": ""},
            )
            line = self.proc.stdout.readline()
            if self.bootstrap_servers in line:
                return
            err = self.proc.communicate(timeout=10)[1]
            # The port of a killed broker can take a moment to be free again.
            assert "in use" in err and time.monotonic() < deadline, (line, err)
            time.sleep(0.2)

    def stop(self, sig: int) -> tuple[int, str]:
        """Sends `sig`; the exit code and what the broker wrote to stderr."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=30)
        code = self.proc.returncode
        self.proc = None
        return code, err

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.communicate()
            self.proc = None


RECORDER = """
import os, sys, time
import tskafka as tk

bootstrap, topic, group, out, mode, batch = sys.argv[1:]
batch = int(batch)
consumer = tk.Consumer(
    bootstrap,
    {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "auto.commit.interval.ms": 200},
    topics=[topic], group_id=group, offset="earliest", auto_commit=mode == "auto",
)
fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

def record(ids):
    os.write(fd, "".join(f"{i}\\n" for i in ids).encode())
    os.fsync(fd)

batches = 0
while True:  # until killed
    frame = consumer.poll_frame(max_rows=batch, timeout=0.5)
    if frame is None:
        continue
    ids = frame["i"].to_list()
    if mode == "auto":
        record(ids)
        time.sleep(0.05)
        continue
    if mode == "mid-batch":  # the parent kills it here, half the batch recorded
        record(ids[: len(ids) // 2])
        print("mid", len(ids) // 2, flush=True)
        sys.stdin.readline()
        record(ids[len(ids) // 2 :])
    else:
        record(ids)
    consumer.commit()
    batches += 1
    if mode != "resume":  # the parent says when to go on (or kills it)
        print("committed", batches, flush=True)
        sys.stdin.readline()
"""


def recorder(
    bootstrap: str, topic: str, group: str, out: str, mode: str, batch: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RECORDER, bootstrap, topic, group, out, mode, str(batch)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TSKAFKA_BOOTSTRAP": ""},
    )


def recorded(path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize("mode", ["auto", "between-batches", "mid-batch"])
def test_killed_consumer_resumes_from_its_last_commit(bootstrap, new_topic, tmp_path, mode):
    """A consumer SIGKILLed mid-stream and a second one started in the same
    group together process every row (at-least-once). What repeats:

    - auto-commit: rows returned since the last background commit
      (``auto.commit.interval.ms``), recorded by the first and again by the second;
    - manual ``commit()`` after recording, killed between batches: nothing;
    - manual commit, killed mid-batch: exactly the rows of the uncommitted
      batch that were recorded before the kill (at most one batch).
    """
    rows, batch = 20_000, 200
    topic = new_topic(3)
    tk.Producer(bootstrap).send(topic, pl.DataFrame({"i": range(rows)}), rows_per_message=10)
    group = f"killed-{mode}-{time.monotonic_ns()}"
    first_file, second_file = tmp_path / "first", tmp_path / "second"

    first = recorder(
        bootstrap,
        topic,
        group,
        str(first_file),
        "auto" if mode == "auto" else "mid-batch" if mode == "mid-batch" else "paced",
        batch,
    )
    try:
        if mode == "auto":
            deadline = time.monotonic() + 60
            while len(recorded(first_file)) < 3_000:
                assert first.poll() is None and time.monotonic() < deadline, (
                    first.stderr.read() if first.poll() else ""
                )
                time.sleep(0.05)
        elif mode == "between-batches":
            for n in range(1, 4):
                assert first.stdout.readline().split() == ["committed", str(n)], first.stderr.read()
                if n < 3:
                    first.stdin.write("\n")
                    first.stdin.flush()
        else:
            for n in range(1, 3):
                assert first.stdout.readline().split()[0] == "mid", first.stderr.read()
                first.stdin.write("\n")
                first.stdin.flush()
                assert first.stdout.readline().split() == ["committed", str(n)]
                first.stdin.write("\n")
                first.stdin.flush()
            last = first.stdout.readline().split()
            assert last[0] == "mid"
            half = int(last[1])
    finally:
        first.kill()
        first.communicate(timeout=10)
    seen_first = recorded(first_file)
    assert 0 < len(set(seen_first)) < rows  # killed mid-stream

    second = recorder(bootstrap, topic, group, str(second_file), "resume", batch)
    try:
        deadline = time.monotonic() + 90
        while len(set(seen_first) | set(recorded(second_file))) < rows:
            assert second.poll() is None, second.communicate()[1]
            assert time.monotonic() < deadline, (
                f"{len(set(recorded(second_file)))} rows after the restart"
            )
            time.sleep(0.1)
        time.sleep(1.0)  # anything read twice would show up by now
    finally:
        second.kill()
        second.communicate(timeout=10)
    seen_second = recorded(second_file)
    assert set(seen_first) | set(seen_second) == set(range(rows))
    assert len(seen_first) == len(set(seen_first)) and len(seen_second) == len(set(seen_second))
    repeated = set(seen_first) & set(seen_second)
    print(
        f"{mode}: first run {len(seen_first)} rows, second {len(seen_second)}, repeated {len(repeated)}"
    )
    if mode == "auto":
        # Commits happened while the first ran: the second did not start over.
        assert len(repeated) < len(seen_first)
    elif mode == "between-batches":
        assert not repeated
    else:
        # Killed with the 3rd batch's first half recorded but not committed:
        # exactly those rows come again.
        assert 0 < half <= batch // 2
        assert repeated == set(seen_first[-half:])


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["killed", "stopped"])
def test_send_across_a_broker_restart_on_file_storage(tmp_path, stop):
    """300,000 rows in flight while the broker process is killed (or stopped
    with Ctrl+C) and started again on the same port and storage file: the
    producer retries, and the topic holds every row exactly once, in order per key."""
    broker = BrokerProcess(str(tmp_path / "kafka.db"))
    try:
        tk.Admin(broker.bootstrap_servers).create_topic("retail", partitions=3)
        sent = (
            datasets.online_retail(rows=300_000)
            .with_row_index("row")
            .with_columns(pl.col("row").cast(pl.Int64))
        )
        producer = tk.Producer(broker.bootstrap_servers, {"message.timeout.ms": 120_000})
        chunks = sent.iter_slices(30_000)
        # The first chunks go out, and the broker stops while they are on their way
        # (the broker answers fast: a whole send queued first would be acknowledged
        # before the stop); the rest are queued while it is down.
        for chunk in (next(chunks), next(chunks)):
            producer.send("retail", chunk, key="StockCode", rows_per_message=50, wait=False)
        queued = producer.in_flight
        while producer.in_flight == queued:  # the first acknowledgements are in
            time.sleep(0.001)
        code, err = broker.stop(stop)
        assert code == (-signal.SIGKILL if stop == signal.SIGKILL else 0), err
        in_flight = producer.in_flight
        for chunk in chunks:
            producer.send("retail", chunk, key="StockCode", rows_per_message=50, wait=False)
        assert producer.in_flight > in_flight
        time.sleep(1.0)
        broker.start()
        report = producer.flush(timeout=120)
        assert (report.rows, report.rows_pending) == (300_000, 0)
        back = read_partitions(broker.bootstrap_servers, "retail", 300_000, partitions=3)
        print(f"{in_flight} messages in flight at the outage")
        assert_exactly_once_in_key_order(back, sent)
    finally:
        broker.close()


def test_rows_to_a_vanished_topic_are_counted_and_named():
    """What Kafka answers for a deleted topic (UnknownTopicOrPartition, retriable
    for librdkafka) until ``message.timeout.ms``: the rows sent meanwhile fail,
    those before are delivered, and the error names the topic and how many."""
    with MockCluster(brokers=1) as cluster:
        cluster.create_topic("t", partitions=3)
        producer = tk.Producer(cluster.bootstrap_servers, {"message.timeout.ms": 2000})
        first = producer.send("t", pl.DataFrame({"i": range(100_000)}), rows_per_message=10)
        assert first.rows == 100_000
        cluster.request_errors("Produce", ["UnknownTopicOrPartition"] * 100_000)
        started = time.monotonic()
        with pytest.raises(tk.ProduceError) as info:
            producer.send("t", pl.DataFrame({"i": range(100_000, 200_000)}), rows_per_message=10)
        assert time.monotonic() - started < 15
        e = info.value
        assert (e.rows_failed, e.rows_delivered) == (100_000, 0)
        assert '100000 of 100000 rows to topic "t" were not delivered' in str(e)
        cluster.clear_request_errors("Produce")
        back = read_partitions(cluster.bootstrap_servers, "t", 100_000, partitions=3)
        assert sorted(back["i"].to_list()) == list(range(100_000))


def test_topic_deleted_mid_send_on_the_embedded_broker(strict_bootstrap):
    # Without auto-creation: else the producer's next metadata request makes the topic again.
    admin = tk.Admin(strict_bootstrap)
    topic = f"deleted-{uuid.uuid4().hex[:8]}"
    admin.create_topic(topic, partitions=3)
    producer = tk.Producer(strict_bootstrap, {"message.timeout.ms": 3000})
    deleter = threading.Timer(0.2, admin.delete_topic, (topic,))
    deleter.start()
    try:
        with pytest.raises(tk.ProduceError) as info:
            producer.send(topic, pl.DataFrame({"i": range(3_000_000)}), rows_per_message=10)
    finally:
        deleter.join()
    e = info.value
    assert e.rows_failed > 0 and e.rows_failed + e.rows_delivered == 3_000_000
    assert topic in str(e) and "deleted" in str(e)


READER = """
import sys, threading
import polars as pl
import tskafka as tk

bootstrap, topic, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])


def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


aggregate = tk.RunningAggregate(by="sensor", aggs={"n": pl.len(), "total": pl.col("value").sum()})
seen, samples, done = 0, [], threading.Event()


def on_frame(frame):
    global seen
    aggregate.update(frame)
    before, seen = seen, seen + frame.height
    if seen // 50_000 != before // 50_000 or seen >= rows:
        samples.append((seen, rss_mib()))
    if seen >= rows:
        done.set()


consumer = tk.Consumer(bootstrap, topics=[topic], offset="earliest")
bg = consumer.start(on_frame, max_rows=10_000)
assert done.wait(120), seen
bg.stop()
assert int(aggregate.result()["n"].sum()) == rows
warm = next(r for n, r in samples if n >= rows // 3)
print(warm, max(r for n, r in samples if n >= rows // 3), samples[-1][1], flush=True)
"""


def test_a_long_background_read_does_not_grow(bootstrap, new_topic):
    """300,000 one-row messages through a BackgroundConsumer into a
    RunningAggregate, in a child process: after the first third (librdkafka's
    fetch queue filled, allocator warm) RSS stays flat. benchmarks/bench_memory.py
    measures 3,000,000."""
    rows = 300_000
    topic = new_topic(3)
    frame = pl.DataFrame({"sensor": [f"s{i % 50}" for i in range(rows)], "value": [0.5] * rows})
    assert tk.Producer(bootstrap).send(topic, frame, format="json").messages == rows
    done = subprocess.run(
        [sys.executable, "-c", READER, bootstrap, topic, str(rows)],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    warm, peak, end = map(float, done.stdout.split())
    print(f"RSS MiB after a third {warm:.0f}, peak after {peak:.0f}, end {end:.0f}")
    # A leak of 200 bytes per message would add 38 MiB over the last 200,000.
    assert peak - warm < 25, (warm, peak, end)
