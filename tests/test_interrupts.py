"""Ctrl+C (SIGINT) reaches Python within 250 ms of the signal in every
blocking call, and leaves the client usable; interpreter exit with every
kind of live client neither hangs nor crashes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Self

import polars as pl
import pytest

import tskafka as tk
from tskafka import datasets
from tskafka.testing import MockCluster

PROMPT = 0.25  # seconds from the signal to KeyboardInterrupt in Python


class Interrupt:
    """Sends SIGINT to this process after `delay` s and keeps when it did."""

    def __init__(self, delay: float = 0.5) -> None:
        self.sent_at: float | None = None
        self.timer = threading.Timer(delay, self._fire)

    def _fire(self) -> None:
        self.sent_at = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)

    def __enter__(self) -> Self:
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.cancel()

    def took(self) -> float:
        """Seconds from the signal to now (call it in the except block)."""
        assert self.sent_at is not None, "the call returned before the signal"
        return time.monotonic() - self.sent_at


def interrupted(call, *args, delay: float = 0.5, **kwargs) -> float:
    """Runs `call` until SIGINT stops it; the seconds the interrupt took to arrive."""
    with Interrupt(delay) as sigint:
        try:
            call(*args, **kwargs)
        except KeyboardInterrupt:
            return sigint.took()
    raise AssertionError(f"{call} returned without KeyboardInterrupt")


def test_poll_frame_on_an_idle_topic(bootstrap, topic):
    with tk.Consumer(bootstrap, topics=[topic]) as c:
        assert interrupted(c.poll_frame, timeout=30.0) < PROMPT
        # Still usable afterwards: polls and reads what comes.
        tk.Producer(bootstrap).send(topic, pl.DataFrame({"x": [1, 2, 3]}), partition=0)
        deadline = time.monotonic() + 20
        got = 0
        while got < 3 and time.monotonic() < deadline:
            f = c.poll_frame(timeout=0.5)
            got += 0 if f is None else f.height
        assert got == 3


@pytest.fixture
def down_cluster():
    """A one-broker mock cluster whose broker is down."""
    with MockCluster(brokers=1) as cluster:
        cluster.create_topic("t", partitions=2)
        yield cluster


def test_flush_and_send_with_the_broker_down_then_complete_when_it_is_back(down_cluster):
    producer = tk.Producer(down_cluster.bootstrap_servers)
    producer.send("t", pl.DataFrame({"x": [0]}))  # connected, metadata known
    down_cluster.broker_down(1)
    producer.send("t", pl.DataFrame({"x": range(1, 1001)}), rows_per_message=10, wait=False)
    assert interrupted(producer.flush, timeout=60) < PROMPT
    assert (
        interrupted(producer.send, "t", pl.DataFrame({"x": range(1001, 2001)}), rows_per_message=10)
        < PROMPT
    )
    # Nothing was dropped by the interrupts: once the broker is back, flush()
    # waits for both sends and every row is delivered.
    down_cluster.broker_up(1)
    report = producer.flush(timeout=60)
    assert (report.rows, report.rows_pending) == (2000, 0)
    with tk.Consumer(
        down_cluster.bootstrap_servers, partitions=[("t", 0), ("t", 1)], offset="earliest"
    ) as c:
        values: list[int] = []
        deadline = time.monotonic() + 20
        while len(values) < 2001 and time.monotonic() < deadline:
            f = c.poll_frame(timeout=0.5)
            if f is not None:
                values.extend(f["x"].to_list())
    assert sorted(values) == list(range(2001))


def test_replay_wait_stops_the_replay(bootstrap, new_topic):
    topic = new_topic(1)
    r = tk.replay(
        datasets.sensors(rows=1000, period=60.0), topic, bootstrap, time_column="timestamp", speed=1
    )
    assert interrupted(r.wait) < PROMPT
    assert r.progress.state == "stopped"
    assert r.progress.rows_failed == 0


def test_replay_wait_with_the_broker_down_returns_at_once(down_cluster):
    down_cluster.broker_up(1)
    r = tk.replay(
        datasets.sensors(rows=1000, period=0.01),
        "t",
        down_cluster.bootstrap_servers,
        time_column="timestamp",
        speed=1,
    )
    while r.progress.rows_delivered < 10:
        time.sleep(0.01)
    down_cluster.broker_down(1)
    time.sleep(0.3)
    # Ctrl+C does not wait for the acks the dead broker owes.
    assert interrupted(r.wait) < PROMPT
    assert r.progress.state == "stopping"
    down_cluster.broker_up(1)
    # They arrive once it is back: every row sent is delivered.
    done = r.stop()
    assert done.state == "stopped"
    assert done.rows_delivered == done.rows_sent > 10 and done.rows_failed == 0


def test_replay_start_waiting_on_an_unanswered_config_lookup(down_cluster):
    """The mock cluster never answers DescribeConfigs (the topic's retention,
    looked up for event-time replays): the start is interruptible, and gives
    up on the lookup after a few seconds."""
    down_cluster.broker_up(1)
    start = (datasets.sensors(rows=10, period=1.0), "t", down_cluster.bootstrap_servers)
    assert interrupted(tk.replay, *start, time_column="timestamp") < PROMPT
    started = time.monotonic()
    tk.replay(*start, time_column="timestamp", speed=None).wait()
    assert time.monotonic() - started < 10


def test_background_join_and_stop(bootstrap, topic):
    entered, release = threading.Event(), threading.Event()

    def stuck(frame: pl.DataFrame) -> None:
        entered.set()
        release.wait(30)

    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        bg = c.start(stuck, max_rows=10)
        assert interrupted(bg.join) < PROMPT
        assert bg.running
        # A callback that does not return holds stop(); Ctrl+C gets out of it.
        tk.Producer(bootstrap).send(topic, pl.DataFrame({"x": [1]}), partition=0)
        assert entered.wait(20)
        assert interrupted(bg.stop, timeout=60) < PROMPT
        release.set()
        bg.stop(timeout=10)
        assert not bg.running
        assert bg.status.state == "stopped"


@pytest.mark.parametrize("call", ["list_topics", "describe_topic", "create_topic", "delete_topic"])
def test_admin_calls_against_a_dead_broker(call):
    with MockCluster(brokers=1) as cluster:
        admin = tk.Admin(cluster.bootstrap_servers)
        cluster.broker_down(1)
        args = {
            "list_topics": (),
            "describe_topic": ("t",),
            "create_topic": ("t",),
            "delete_topic": ("t",),
        }[call]
        assert interrupted(getattr(admin, call), *args, timeout=30) < PROMPT
        cluster.broker_up(1)
        assert isinstance(admin.list_topics(timeout=20), list)  # usable again


def test_close_from_another_thread_ends_a_poll_without_timeout(bootstrap, topic):
    c = tk.Consumer(bootstrap, topics=[topic])
    outcome: list[BaseException] = []
    polling = threading.Event()

    def poll() -> None:
        polling.set()
        try:
            c.poll_frame(timeout=None)
        except BaseException as e:  # noqa: BLE001 - kept for the assertion
            outcome.append(e)

    t = threading.Thread(target=poll)
    t.start()
    polling.wait()
    time.sleep(0.3)
    started = time.monotonic()
    c.close()
    t.join(timeout=10)
    assert not t.is_alive()
    assert time.monotonic() - started < 6
    assert len(outcome) == 1 and isinstance(outcome[0], tk.ClosedError), outcome


EXIT_SCRIPT = """
import threading, time
import polars as pl
import tskafka as tk
from tskafka import datasets
from tskafka.testing import MockCluster

broker = tk.LocalBroker()
bootstrap = broker.bootstrap_servers
admin = tk.Admin(bootstrap)
for name in ("replayed", "read"):
    admin.create_topic(name, partitions=2)
tk.Producer(bootstrap).send("read", pl.DataFrame({"i": range(10_000)}), rows_per_message=100)

cluster = MockCluster(brokers=1)
cluster.create_topic("t", partitions=1)
unflushed = tk.Producer(cluster.bootstrap_servers)
unflushed.send("t", pl.DataFrame({"x": [0]}))
cluster.broker_down(1)
unflushed.send("t", pl.DataFrame({"x": range(1000)}), rows_per_message=10, wait=False)

replay = tk.replay(datasets.sensors(rows=1000, period=60.0), "replayed", bootstrap,
                   time_column="timestamp", speed=1)

polled = threading.Event()
idle = tk.Consumer(bootstrap, topics=["replayed"], offset="latest")
def poll_forever():
    try:
        while True:
            polled.set()
            idle.poll_frame(timeout=None)
    except tk.ClosedError:  # closed at exit
        pass
threading.Thread(target=poll_forever, daemon=True).start()

reader = tk.Consumer(bootstrap, topics=["read"], offset="earliest")
bg = reader.start(lambda frame: time.sleep(0.05), max_rows=100)

polled.wait()
while replay.progress.rows_sent < 1 or bg.status.frames < 1:
    time.sleep(0.01)
time.sleep(0.2)
print("exiting", unflushed.in_flight > 0, replay.progress.state, bg.status.state, flush=True)
"""


def test_interpreter_exit_with_every_kind_of_live_client():
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT)],
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "PYTHONFAULTHANDLER": "1", "TSKAFKA_BOOTSTRAP": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "exiting True running running" in done.stdout, done.stdout + done.stderr
    for crash in ("Fatal Python error", "panicked", "Traceback", "Segmentation"):
        assert crash not in done.stderr, done.stderr
    print(f"exit took {time.monotonic() - started:.1f}s")
    assert time.monotonic() - started < 60
