"""Faults injected with librdkafka's mock cluster: every row is delivered
exactly once or reported as failed, and nothing hangs."""

from __future__ import annotations

import time

import polars as pl
import pytest

import tskafka as tk
from tskafka import datasets
from tskafka.testing import MockCluster

PARTITIONS = 24  # the mock keeps 5 MiB per partition: spread the data out


def read_partitions(bootstrap: str, topic: str, rows: int, timeout: float = 60) -> pl.DataFrame:
    frames, got = [], 0
    deadline = time.monotonic() + timeout
    with tk.Consumer(
        bootstrap, partitions=[(topic, p) for p in range(PARTITIONS)], offset="earliest", metadata=True
    ) as c:
        while got < rows and time.monotonic() < deadline:
            f = c.poll_frame(max_rows=1_000_000, timeout=1.0)
            if f is not None:
                frames.append(f)
                got += f.height
        # Nothing more than what was sent arrives later (no duplicates in flight).
        extra = c.poll_frame(timeout=0.5)
    assert extra is None, extra
    return pl.concat(frames) if frames else pl.DataFrame()


def assert_exactly_once_in_key_order(back: pl.DataFrame, sent: pl.DataFrame) -> None:
    assert back.height == sent.height
    assert back["row"].n_unique() == sent.height
    assert back.drop(pl.selectors.starts_with("kafka_")).sort("row").equals(sent)
    # Per key, rows arrive in the order they were sent.
    ordered = back.sort("kafka_partition", "kafka_offset", maintain_order=True).group_by("StockCode", maintain_order=True).agg(
        pl.col("row").diff().drop_nulls().min().alias("step")
    )
    assert (ordered["step"].fill_null(1) > 0).all()


@pytest.fixture
def cluster():
    with MockCluster(brokers=3) as c:
        c.create_topic("retail", partitions=PARTITIONS, replication_factor=3)
        yield c


def test_million_rows_survive_a_broker_outage(cluster):
    sent = datasets.online_retail(rows=1_000_000).with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))
    producer = tk.Producer(cluster.bootstrap_servers, {"compression.type": "zstd"})
    producer.send("retail", sent, key="StockCode", wait=False)
    cluster.broker_down(1)
    time.sleep(3)
    cluster.broker_up(1)
    report = producer.flush()
    assert (report.rows, report.rows_pending) == (1_000_000, 0)
    assert_exactly_once_in_key_order(read_partitions(cluster.bootstrap_servers, "retail", 1_000_000), sent)


def test_retriable_produce_errors_are_retried_without_duplicates(cluster):
    sent = datasets.online_retail(rows=200_000).with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))
    cluster.request_errors(
        "Produce",
        ["NotLeaderForPartition", "RequestTimedOut", "NotEnoughReplicas", "LeaderNotAvailable"] * 5,
    )
    producer = tk.Producer(cluster.bootstrap_servers, {"compression.type": "zstd"})
    report = producer.send("retail", sent, key="StockCode", rows_per_message=500)
    assert report.rows == 200_000
    assert_exactly_once_in_key_order(read_partitions(cluster.bootstrap_servers, "retail", 200_000), sent)


@pytest.mark.parametrize("error", ["MessageSizeTooLarge", "TopicAuthorizationFailed"])
def test_non_retriable_error_counts_the_rows_lost(cluster, error):
    sent = datasets.online_retail(rows=50_000).with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))
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
        cluster.bootstrap_servers, partitions=[("retail", p) for p in range(PARTITIONS)], offset="earliest"
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
        with pytest.raises(tk.ProduceError) as info:
            producer.send("t", pl.DataFrame({"x": range(10)}), rows_per_message=5)
        assert info.value.rows_failed == 10
        assert time.monotonic() - started < 10
