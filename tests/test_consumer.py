"""Offsets, commits, seeks and assignment."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import polars as pl
import pytest
from helpers import read_all, retail_frame

import tskafka as tk


def test_assign_without_a_group_from_an_offset(bootstrap, new_topic):
    topic = new_topic(2)
    tk.Producer(bootstrap).send(
        topic, pl.DataFrame({"i": range(10)}), rows_per_message=1, partition=1
    )
    with tk.Consumer(bootstrap, partitions=[(topic, 1, 4)]) as c:
        back = read_all(c, 6)
    assert back["i"].to_list() == list(range(4, 10))


def test_latest_skips_what_was_there(bootstrap, new_topic):
    topic = new_topic(1)
    p = tk.Producer(bootstrap)
    p.send(topic, pl.DataFrame({"i": [1, 2]}))
    with tk.Consumer(bootstrap, partitions=[(topic, 0)], offset="latest") as c:
        assert c.poll_frame(timeout=1.0) is None
        p.send(topic, pl.DataFrame({"i": [3]}))
        assert read_all(c, 1)["i"].to_list() == [3]


def test_a_waiting_fetch_is_answered_when_a_row_arrives(bootstrap, new_topic):
    """A fetch waiting at the broker for records returns when they come, not
    at the end of fetch.wait.max.ms."""
    topic = new_topic(1)
    with tk.Consumer(
        bootstrap, {"fetch.wait.max.ms": 10_000}, partitions=[(topic, 0)], offset="latest"
    ) as c:
        assert c.poll_frame(timeout=0.5) is None  # its fetch now waits at the broker
        sent = time.monotonic()
        tk.Producer(bootstrap).send(topic, pl.DataFrame({"i": [7]}))
        frame = c.poll_frame(timeout=9)
        waited = time.monotonic() - sent
    assert frame is not None and frame["i"].to_list() == [7]
    assert waited < 2.5, f"the row came {waited:.1f} s after it was sent"


def test_manual_commit_resumes_after_the_last_commit(bootstrap, new_topic):
    topic = new_topic(1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    tk.Producer(bootstrap).send(topic, pl.DataFrame({"i": range(100)}), rows_per_message=10)
    with tk.Consumer(
        bootstrap, topics=[topic], group_id=group, offset="earliest", auto_commit=False
    ) as c:
        first = c.poll_frame(max_rows=30, timeout=10)
        assert first is not None and 30 <= len(first) < 100
        c.commit()
        assert c.committed() == {(topic, 0): len(first) // 10}  # offsets count messages
        c.poll_frame(max_rows=30, timeout=5)  # read but never committed
    with tk.Consumer(
        bootstrap, topics=[topic], group_id=group, offset="earliest", auto_commit=False
    ) as c:
        rest = read_all(c, 100 - len(first))
    assert first["i"].to_list() + rest["i"].to_list() == list(range(100))


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_group_starts_committed_partitions_at_their_commit_and_the_rest_at_offset(
    bootstrap, new_topic, strategy
):
    # A group consumer starts partitions without a committed offset at
    # `offset=` itself (not through librdkafka's delayed reset): check both
    # kinds of partition, under both rebalance protocols.
    topic = new_topic(2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    p = tk.Producer(bootstrap)
    for part in (0, 1):
        p.send(
            topic,
            pl.DataFrame({"i": range(part * 100, part * 100 + 10)}),
            rows_per_message=1,
            partition=part,
        )
    config = {"partition.assignment.strategy": strategy}
    with tk.Consumer(
        bootstrap, config, partitions=[(topic, 0, 4)], group_id=group, auto_commit=False
    ) as c:
        assert read_all(c, 6)["i"].to_list() == list(range(4, 10))
        c.commit()
    for offset, expected in (("earliest", list(range(100, 110))), ("latest", [])):
        with tk.Consumer(
            bootstrap, config, topics=[topic], group_id=group, offset=offset, auto_commit=False
        ) as c:
            if offset == "latest":
                assert c.poll_frame(timeout=2.0) is None
                p.send(topic, pl.DataFrame({"i": [0, 1]}), partition=0)
                p.send(topic, pl.DataFrame({"i": [2]}), partition=1)
                expected = [0, 1, 2]  # partition 0 from its commit (now at 10), 1 from the end
            back = read_all(c, len(expected))
            assert sorted(back["i"].to_list()) == expected


def test_seek_to_offset_and_to_time(bootstrap, new_topic):
    topic = new_topic(1)
    df = retail_frame(100)
    tk.Producer(bootstrap).send(topic, df, format="json", timestamp="InvoiceDate")
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        read_all(c, 100)
        moved = c.seek(90)
        assert moved == [(topic, 0, 90)]
        assert read_all(c, 10)["row"].to_list() == list(range(90, 100))
        at = dt.datetime(2009, 12, 1, 7, 45) + dt.timedelta(minutes=42)
        c.seek(timestamp=at)
        back = read_all(c, 58)
        assert back["row"].to_list() == list(range(42, 100))


def test_max_rows_bounds_a_frame(bootstrap, new_topic):
    topic = new_topic(1)
    tk.Producer(bootstrap).send(topic, pl.DataFrame({"i": range(1000)}), rows_per_message=100)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        sizes = []
        while sum(sizes) < 1000:
            f = c.poll_frame(max_rows=250, timeout=5)
            assert f is not None
            sizes.append(len(f))
    # A frame stops at the first message that reaches max_rows.
    assert max(sizes) <= 300


def test_admin_topics(admin, new_topic):
    name = new_topic(4)
    assert name in admin.list_topics()
    parts = admin.describe_topic(name)
    assert [p["partition"] for p in parts] == [0, 1, 2, 3]
    assert all(p["low"] == 0 and p["high"] == 0 for p in parts)
    with __import__("pytest").raises(tk.KafkaError):
        admin.create_topic(name)
    admin.create_topic(name, exist_ok=True)
    admin.delete_topic(name)
    assert name not in admin.list_topics()


def test_reads_over_many_fetches_with_a_raised_message_max(bootstrap, new_topic):
    # More than one 4 MiB fetch of data; message.max.bytes above that default
    # must raise the fetch size with it (librdkafka refuses a smaller one).
    topic = new_topic(2)
    df = retail_frame(60_000)
    report = tk.Producer(bootstrap).send(topic, df, rows_per_message=2_000)
    assert report.bytes > 4 << 20
    with tk.Consumer(
        bootstrap, {"message.max.bytes": "10000000"}, topics=[topic], offset="earliest"
    ) as c:
        back = read_all(c, len(df))
    assert back.sort("row").equals(df)


@pytest.mark.parametrize(
    "arguments",
    [
        {"topics": ["t"], "partitions": [("t", 0)]},
        {"topics": [1]},
        {"partitions": "t"},
        {"partitions": [("t",)]},
        {"partitions": [("t", "0")]},
        {"partitions": [("t", 0, "earliest")]},
    ],
)
def test_bad_topics_or_partitions_fail_at_once(arguments):
    # Checked before the client is made: no wait for an unreachable cluster.
    started = time.monotonic()
    with pytest.raises(tk.ConfigError, match="topics|partitions"):
        tk.Consumer("127.0.0.1:9", timeout=30, **arguments)
    assert time.monotonic() - started < 2
