"""Replay: schedule, pause/resume/stop, sources, and what goes wrong."""

from __future__ import annotations

import datetime as dt
import threading
import time

import polars as pl
import pytest
from helpers import as_plain_json, read_all, retail_frame

import tskafka as tk
from tskafka import datasets


def consumed(bootstrap: str, topic: str, rows: int, timeout: float = 20.0) -> pl.DataFrame:
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", metadata=True) as c:
        return read_all(c, rows, timeout)


def test_event_time_schedule_is_kept_without_drift(bootstrap, new_topic):
    topic = new_topic(1)
    series = datasets.irregular_series(rows=60, max_gap=2.0, seed=3)
    speed = 25.0
    r = tk.replay(series, topic, bootstrap, time_column="timestamp", speed=speed, timestamp="send")
    assert r.kafka_timestamps == "send"
    report = r.wait(timeout=30)
    assert (report.state, report.rows_delivered, report.rows_failed) == ("done", 60, 0)
    back = consumed(bootstrap, topic, 60).sort("kafka_offset")
    assert back["timestamp"].to_list() == series["timestamp"].to_list()
    # Each row is its own tick: one message per row, sent (CreateTime) on schedule.
    sent_ms = back["kafka_timestamp"].dt.epoch("ms").to_numpy()
    planned_ms = (series["timestamp"].dt.epoch("us").to_numpy() / 1000) / speed
    error = (sent_ms - sent_ms[0]) - (planned_ms - planned_ms[0])
    span = planned_ms[-1] - planned_ms[0]
    assert span > 2_000
    # Within a few ms of the schedule, and no drift: the last is as close as the first.
    assert abs(error).max() < 40, error
    assert abs(error[-1]) < 40, error
    assert float(pl.Series(abs(error)).median()) < 10, error


def replay_arrivals(bootstrap: str, topic: str, frame: pl.DataFrame, speed: float):
    """When a consumer already reading the partition receives each replayed
    message, and when tk.replay() returned (time.monotonic() seconds)."""
    confluent = pytest.importorskip("confluent_kafka")
    c = confluent.Consumer({"bootstrap.servers": bootstrap, "group.id": topic})
    c.assign([confluent.TopicPartition(topic, 0, confluent.OFFSET_BEGINNING)])
    arrivals: list[float] = []

    def read() -> None:
        deadline = time.monotonic() + 30
        while len(arrivals) <= frame.height and time.monotonic() < deadline:
            m = c.poll(0.05)
            if m is not None and m.error() is None:
                arrivals.append(time.monotonic())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        # The consumer is reading (connected, fetching) once a first message reached it.
        tk.Producer(bootstrap).send(topic, pl.DataFrame({"marker": [1]}))
        while not arrivals and reader.is_alive():
            time.sleep(0.01)
        r = tk.replay(frame, topic, bootstrap, time_column="t", speed=speed)
        returned = time.monotonic()
        assert r.wait(timeout=30).rows_delivered == frame.height
    finally:
        reader.join()
        c.close()
    return arrivals[1:], returned


def test_a_consumer_receives_every_message_on_schedule(bootstrap, new_topic):
    """The schedule starts once the producer is ready (connected, with its
    producer id and the topic's metadata): started before, the first
    messages reach consumers late and the next ones catch up in a burst."""
    gaps = [4, 2, 1, 4, 1, 9, 2, 1]  # seconds, as in the replay tutorial's data
    speed = 20.0
    seconds = [sum(gaps[:i]) for i in range(len(gaps) + 1)]
    base = dt.datetime(2024, 1, 1)
    frame = pl.DataFrame(
        {"t": [base + dt.timedelta(seconds=s) for s in seconds], "v": range(len(seconds))}
    )
    for run in range(5):
        arrivals, returned = replay_arrivals(bootstrap, new_topic(1), frame, speed)
        assert len(arrivals) == len(seconds), f"run {run}: {len(arrivals)} messages arrived"
        first = arrivals[0] - returned
        assert first < 1.0, f"run {run}: the first message arrived {first:.3f}s after replay()"
        late_ms = [
            round(1000 * (arrived - (arrivals[0] + s / speed)), 1)
            for arrived, s in zip(arrivals, seconds, strict=True)
        ]
        assert max(map(abs, late_ms)) <= 25, f"run {run}: ms behind schedule {late_ms}"


def test_the_schedule_waits_for_the_first_acknowledgement():
    """Against a cluster that answers in half a second, the second reading
    (due 0.1 s after the first) waits for the first one's acknowledgement."""
    from tskafka.testing import MockCluster

    with MockCluster(brokers=1) as cluster:
        cluster.create_topic("t", partitions=1)
        cluster.round_trip_time(1, 0.5)
        readings = datasets.sensors(rows=20, period=1.0)
        r = tk.replay(
            readings,
            "t",
            cluster.bootstrap_servers,
            time_column="timestamp",
            speed=10,
            timestamp="send",
        )
        time.sleep(0.45)
        progress = r.progress
        assert (progress.rows_sent, progress.rows_delivered) == (1, 0)
        deadline = time.monotonic() + 10
        while r.progress.rows_delivered < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert r.progress.rows_delivered >= 2
        assert r.stop().rows_failed == 0


def test_rows_sharing_a_tick_or_window_go_in_one_message(bootstrap, new_topic):
    base = dt.datetime(2024, 1, 1)
    seconds = [0, 0, 0, 1, 1, 2, 2.3, 2.6, 5]
    frame = pl.DataFrame(
        {"t": [base + dt.timedelta(seconds=s) for s in seconds], "v": range(len(seconds))}
    )
    topic = new_topic(1)
    tk.replay(frame, topic, bootstrap, time_column="t", speed=100).wait(timeout=20)
    back = consumed(bootstrap, topic, len(seconds))
    sizes = back.group_by("kafka_offset").len().sort("kafka_offset")["len"].to_list()
    assert sizes == [3, 2, 1, 1, 1, 1]

    topic = new_topic(1)
    tk.replay(frame, topic, bootstrap, time_column="t", speed=100, window=1.0).wait(timeout=20)
    back = consumed(bootstrap, topic, len(seconds))
    sizes = back.group_by("kafka_offset").len().sort("kafka_offset")["len"].to_list()
    assert sizes == [5, 3, 1]
    assert back.sort("v")["v"].to_list() == list(range(len(seconds)))


def test_fixed_interval(bootstrap, new_topic):
    topic = new_topic(1)
    frame = pl.DataFrame({"v": range(50)})
    started = time.monotonic()
    report = tk.replay(frame, topic, bootstrap, every=0.05, rows_per_message=10).wait(timeout=20)
    took = time.monotonic() - started
    assert (report.rows_delivered, report.messages) == (50, 5)
    assert 0.19 <= took < 2.0
    back = consumed(bootstrap, topic, 50).sort("kafka_offset")
    gaps = back["kafka_timestamp"].unique().sort().diff().drop_nulls().dt.total_milliseconds()
    assert all(35 <= g <= 80 for g in gaps), gaps.to_list()


def test_as_fast_as_possible_delivers_every_row(bootstrap, new_topic):
    topic = new_topic(3)
    df = retail_frame(20_000)
    report = tk.replay(
        df, topic, bootstrap, time_column="InvoiceDate", speed=None, key="StockCode"
    ).wait()
    assert (report.state, report.rows_delivered) == ("done", 20_000)
    assert report.event_time == df["InvoiceDate"].max()
    back = consumed(bootstrap, topic, 20_000).sort("row")
    assert back.drop(pl.selectors.starts_with("kafka_")).equals(df)
    # Event times became the messages' Kafka timestamps (the latest of each message).
    per_message = back.group_by("kafka_partition", "kafka_offset").agg(
        pl.col("InvoiceDate").max(), pl.col("kafka_timestamp").first()
    )
    assert (
        per_message["InvoiceDate"].dt.epoch("ms") == per_message["kafka_timestamp"].dt.epoch("ms")
    ).all()


@pytest.mark.parametrize("schema_header", [False, True])
def test_json_replay_with_and_without_the_schema_header(bootstrap, new_topic, schema_header):
    confluent = pytest.importorskip("confluent_kafka")
    topic = new_topic(1)
    df = retail_frame(2_000)
    report = tk.replay(
        df, topic, bootstrap, speed=None, format="json", schema_header=schema_header
    ).wait()
    assert (report.state, report.rows_delivered, report.messages) == ("done", 2_000, 2_000)
    back = consumed(bootstrap, topic, 2_000).sort("row").drop(pl.selectors.starts_with("kafka_"))
    assert back.equals(df if schema_header else as_plain_json(df))
    c = confluent.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "h", "auto.offset.reset": "earliest"}
    )
    c.subscribe([topic])
    m = c.poll(10)
    c.close()
    assert m is not None and m.error() is None
    names = [k for k, _ in m.headers() or []]
    assert names == (["tskafka.schema"] if schema_header else [])


def test_pause_resume_and_stop(bootstrap, new_topic):
    topic = new_topic(1)
    readings = datasets.sensors(rows=400, period=1.0)  # 400 s of readings
    r = tk.replay(readings, topic, bootstrap, time_column="timestamp", speed=200)  # 2 s
    time.sleep(0.3)
    r.pause()
    time.sleep(0.1)
    assert r.progress.state == "paused"
    held = r.progress.rows_sent
    time.sleep(0.4)
    assert r.progress.rows_sent == held
    assert 20 < held < 400
    r.resume()
    time.sleep(0.3)
    assert r.progress.rows_sent > held
    # The schedule shifted by the pause: no burst to catch up after resuming.
    assert r.progress.max_lag < 0.05
    started = time.monotonic()
    report = r.stop()
    assert time.monotonic() - started < 1.0
    assert report.state == "stopped"
    assert report.rows_delivered == report.rows_sent < 400
    back = consumed(bootstrap, topic, report.rows_delivered)
    assert back["timestamp"].to_list() == readings["timestamp"][: report.rows_delivered].to_list()


def test_leaving_the_with_block_stops(bootstrap, new_topic):
    topic = new_topic(1)
    readings = datasets.sensors(rows=100, period=60.0)
    started = time.monotonic()
    with tk.replay(readings, topic, bootstrap, time_column="timestamp", speed=1) as r:
        time.sleep(0.2)
    assert time.monotonic() - started < 1.5
    assert r.progress.state == "stopped"
    assert r.progress.rows_delivered == 1  # the first reading is due at once


def test_replay_errors_are_clear(bootstrap, strict_bootstrap, new_topic, tmp_path):
    topic = new_topic(1)
    df = retail_frame(10)
    with pytest.raises(tk.ConfigError, match="time_column"):
        tk.replay(df, topic, bootstrap, speed=10)
    with pytest.raises(tk.SchemaError, match=r"'when'|\"when\""):
        tk.replay(df, topic, bootstrap, time_column="when", speed=10)
    with pytest.raises(tk.SchemaError, match="not a datetime"):
        tk.replay(df, topic, bootstrap, time_column="Quantity", speed=10)
    with pytest.raises(tk.ConfigError, match="speed must be > 0"):
        tk.replay(df, topic, bootstrap, time_column="InvoiceDate", speed=0)
    with pytest.raises(tk.KafkaError, match="does not exist"):
        tk.replay(df, "no-such-topic", strict_bootstrap, speed=None)
    with pytest.raises(tk.ConfigError, match="does not exist"):
        tk.replay(tmp_path / "missing.csv", topic, bootstrap, speed=None)
    started = time.monotonic()
    with pytest.raises(tk.KafkaError, match="could not reach"):
        tk.replay(df, topic, "127.0.0.1:1", speed=None, timeout=2)
    assert time.monotonic() - started < 10


def test_csv_replay_bad_row_names_its_line_or_is_skipped(bootstrap, new_topic, tmp_path):
    path = tmp_path / "readings.csv"
    lines = ["timestamp,temp1"] + [f"2024-01-01 00:00:{i:02d},{20 + i}" for i in range(30)]
    lines[17] = "2024-01-01 00:00:16,hot"
    path.write_text("\n".join(lines) + "\n")
    topic = new_topic(1)
    r = tk.replay(path, topic, bootstrap, time_column="timestamp", speed=None, chunk_rows=8)
    with pytest.raises(tk.SchemaError, match=r"line 18 of .*readings.csv.*'hot'|line 18 .*\"hot\""):
        r.wait(timeout=20)
    # The rows before the bad chunk were sent and delivered, and are counted.
    assert r.progress.state == "failed"
    assert r.progress.rows_delivered == 16

    topic = new_topic(1)
    r = tk.replay(
        path,
        topic,
        bootstrap,
        time_column="timestamp",
        speed=None,
        dtypes={"temp1": int},
        on_bad_rows="skip",
    )
    report = r.wait(timeout=20)
    assert (report.rows_delivered, report.rows_skipped) == (29, 1)
    assert r.bad_rows[0][0] == 18 and "hot" in r.bad_rows[0][1]


def test_csv_and_parquet_files_replay(bootstrap, new_topic, tmp_path):
    readings = datasets.sensors(rows=500, period=1.0)
    for name in ("r.csv", "r.parquet"):
        path = tmp_path / name
        datasets.save(readings, str(path))
        topic = new_topic(1)
        report = tk.replay(path, topic, bootstrap, time_column="timestamp", speed=None).wait()
        assert report.rows_delivered == 500
        back = consumed(bootstrap, topic, 500).sort("kafka_offset")
        assert back.select(readings.columns).equals(readings), name


def test_historic_event_times_vs_retention(bootstrap, admin, tmp_path):
    name = f"test-retention-{time.monotonic_ns()}"
    admin.create_topic(name, partitions=1, config={"retention.ms": str(7 * 86_400_000)})
    try:
        df = retail_frame(100)  # December 2009
        with pytest.warns(UserWarning, match="retention"):
            r = tk.replay(df, name, bootstrap, time_column="InvoiceDate", speed=None)
        assert r.kafka_timestamps == "send"
        r.wait()
        back = consumed(bootstrap, name, 100)
        assert (back["kafka_timestamp"].dt.year() >= 2025).all()
        with pytest.warns(UserWarning, match="may delete"):
            r = tk.replay(
                df, name, bootstrap, time_column="InvoiceDate", speed=None, timestamp="event"
            )
        assert r.kafka_timestamps == "event"
        r.wait()
    finally:
        admin.delete_topic(name, missing_ok=True)
    # No retention reported (the embedded broker keeps everything): event times are used.
    plain = f"{name}-plain"
    admin.create_topic(plain, partitions=1)
    try:
        r = tk.replay(retail_frame(10), plain, bootstrap, time_column="InvoiceDate", speed=None)
        assert r.kafka_timestamps == "event"
        r.wait()
    finally:
        admin.delete_topic(plain, missing_ok=True)


SCRIPT = """
import sys, time, tskafka as tk
from tskafka import datasets
bootstrap, topic, mode = sys.argv[1:]
r = tk.replay(datasets.sensors(rows=1000, period=60.0), topic, bootstrap,
              time_column="timestamp", speed=1)
while r.progress.rows_sent < 1:
    time.sleep(0.01)
print("started", flush=True)
if mode == "wait":
    try:
        r.wait()
    except KeyboardInterrupt:
        at = time.time()
        done = r.stop()  # the interrupt did not wait for acks: stop() reports them
        print("interrupted", done.state, done.rows_delivered, at, flush=True)
        sys.exit(0)
"""


@pytest.mark.parametrize("mode", ["exit", "wait"])
def test_interpreter_exit_and_ctrl_c_stop_a_running_replay(bootstrap, new_topic, mode):
    import signal
    import subprocess
    import sys

    topic = new_topic(1)
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, bootstrap, topic, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.2)
    sent = time.monotonic()
    signalled = time.time()
    if mode == "wait":
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=15)
    took = time.monotonic() - sent
    assert proc.returncode == 0, err
    assert took < 5, took
    if mode == "wait":
        # Ctrl+C reached wait() and stopped the replay: the first reading was delivered.
        assert out.split()[:3] == ["interrupted", "stopped", "1"], out + err
        # KeyboardInterrupt reached Python promptly, with the replay already stopped.
        assert float(out.split()[3]) - signalled < 0.5, out
    back = consumed(bootstrap, topic, 1)
    assert back.height == 1
