"""Background consumers: stopping, errors, commits, buffers and interpreter exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import polars as pl
import pytest
from helpers import numbered, read_all

import tskafka as tk


def wait_for(condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Collect:
    """A callback that keeps every frame, optionally slowly."""

    def __init__(self, delay: float = 0.0) -> None:
        self.frames: list[pl.DataFrame] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, frame: pl.DataFrame) -> None:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.frames.append(frame)

    @property
    def rows(self) -> int:
        with self.lock:
            return sum(len(f) for f in self.frames)

    def values(self) -> list[int]:
        with self.lock:
            return [v for f in self.frames for v in f["i"].to_list()]


def test_stop_returns_within_a_second_idle_and_busy(bootstrap, topic):
    p = tk.Producer(bootstrap)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        got = Collect()
        bg = c.start(got)
        assert bg.running and bg.status.state == "running"
        time.sleep(0.5)
        started = time.monotonic()
        bg.stop()
        assert time.monotonic() - started < 1.0
        assert bg.status.state == "stopped" and not bg.running

        stop_sending = threading.Event()

        def send_forever() -> None:
            n = 0
            while not stop_sending.is_set():
                p.send(topic, numbered(n, n + 1_000), rows_per_message=100)
                n += 1_000

        sender = threading.Thread(target=send_forever)
        sender.start()
        try:
            bg = c.start(got, max_rows=500)
            wait_for(lambda: bg.status.rows > 5_000, what="rows while sending")
            started = time.monotonic()
            bg.stop()
            assert time.monotonic() - started < 1.0
        finally:
            stop_sending.set()
            sender.join()


def test_callback_error_is_kept_raised_and_its_rows_not_lost(bootstrap, topic):
    tk.Producer(bootstrap).send(topic, numbered(0, 50))
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:

        def boom(frame: pl.DataFrame) -> None:
            raise ValueError(f"bad batch of {len(frame)}")

        bg = c.start(boom)
        wait_for(lambda: not bg.running, what="the error to end the thread")
        status = bg.status
        assert status.state == "failed" and isinstance(status.error, ValueError)
        assert status.rows == 0
        with pytest.raises(ValueError, match="bad batch"):
            bg.join()
        with pytest.raises(ValueError, match="bad batch"):
            bg.stop()
        # The batch the callback failed on was not consumed: it comes again.
        assert sorted(read_all(c, 50)["i"].to_list()) == list(range(50))


def test_decode_error_is_kept_and_raised(bootstrap, new_topic):
    confluent = pytest.importorskip("confluent_kafka")
    topic = new_topic(1)
    raw = confluent.Producer({"bootstrap.servers": bootstrap})
    raw.produce(topic, b"\x00\x01 not a frame", partition=0)
    raw.flush(10)
    del raw  # tracebacks kept below would keep it connected past the broker
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        bg = c.start(Collect())
        with pytest.raises(tk.DecodeError):
            bg.join(timeout=20)
        assert isinstance(bg.status.error, tk.DecodeError)
        with pytest.raises(tk.DecodeError, match=rf"{topic}\[0\]@0"):
            bg.stop()


def test_exit_of_a_with_block_stops_and_raises(bootstrap, topic):
    tk.Producer(bootstrap).send(topic, numbered(0, 10))
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        with pytest.raises(ZeroDivisionError), c.start(lambda f: 1 / 0) as bg:
            wait_for(lambda: not bg.running, what="the failure")
        assert bg.status.state == "failed"


def test_consumer_cannot_poll_or_start_twice_while_running(bootstrap, topic):
    with tk.Consumer(bootstrap, topics=[topic]) as c:
        bg = c.start(Collect())
        with pytest.raises(tk.ConsumeError, match="background"):
            c.poll_frame()
        with pytest.raises(tk.ConfigError, match="already"):
            c.start(Collect())
        bg.stop()
        assert c.poll_frame(timeout=0.1) is None


def test_stop_from_inside_the_callback(bootstrap, topic):
    tk.Producer(bootstrap).send(topic, numbered(0, 10))
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        holder: list[tk.BackgroundConsumer] = []
        got = Collect()

        def once(frame: pl.DataFrame) -> None:
            got(frame)
            holder[0].stop()

        holder.append(c.start(once))
        assert holder[0].join(timeout=10)
        assert holder[0].status.state == "stopped" and got.rows > 0


@pytest.mark.parametrize("auto_commit", [False, True])
def test_stop_and_start_in_a_group_neither_lose_nor_duplicate(bootstrap, new_topic, auto_commit):
    topic = new_topic(3)
    group = f"g-{uuid.uuid4().hex[:8]}"
    p = tk.Producer(bootstrap)
    p.send(topic, numbered(0, 3_000), rows_per_message=50)
    seen: list[int] = []

    def run(stop_after: int, *, restart_on_same: bool) -> None:
        with tk.Consumer(
            bootstrap, topics=[topic], group_id=group, offset="earliest", auto_commit=auto_commit
        ) as c:
            got = Collect(delay=0.01)
            bg = c.start(got, max_rows=100)
            wait_for(lambda: got.rows >= stop_after, what=f"{stop_after} rows")
            bg.stop()
            if restart_on_same:
                more = Collect()
                bg = c.start(more, max_rows=100)
                wait_for(lambda: more.rows >= 100, what="rows after a restart")
                bg.stop()
                seen.extend(more.values())
            seen.extend(got.values())
            if not auto_commit:
                c.commit()

    run(500, restart_on_same=True)
    p.send(topic, numbered(3_000, 4_000), rows_per_message=50)
    run(1_000, restart_on_same=False)
    with tk.Consumer(
        bootstrap, topics=[topic], group_id=group, offset="earliest", auto_commit=auto_commit
    ) as c:
        missing = 4_000 - len(seen)
        if missing > 0:
            seen.extend(read_all(c, missing)["i"].to_list())
        assert c.poll_frame(timeout=1.0) is None
    assert sorted(seen) == list(range(4_000))


def test_buffer_waits_when_full_and_drains_everything_once(bootstrap, new_topic):
    topic = new_topic(1)
    tk.Producer(bootstrap).send(topic, numbered(0, 5_000), rows_per_message=100)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", auto_commit=False) as c:
        bg = c.start(buffer_rows=1_000, max_rows=100)
        wait_for(lambda: bg.status.buffered_rows >= 1_000, what="a full buffer")
        time.sleep(0.5)
        status = bg.status
        assert status.buffered_rows == status.unconsumed_rows == 1_000  # reading paused
        assert bg.latest(3)["i"].to_list() == [997, 998, 999]
        assert bg.status.buffered_rows == 1_000  # latest() takes nothing
        got: list[int] = []
        deadline = time.monotonic() + 20
        while len(got) < 5_000 and time.monotonic() < deadline:
            frame = bg.drain(max_rows=700)
            if frame is not None:
                assert len(frame) <= 700
                got.extend(frame["i"].to_list())
            else:
                time.sleep(0.02)
        assert got == list(range(5_000))
        c.commit()
        assert c.committed() == {(topic, 0): 50}
        bg.stop()


def test_rows_left_in_the_buffer_come_back_after_stop(bootstrap, new_topic):
    topic = new_topic(1)
    tk.Producer(bootstrap).send(topic, numbered(0, 300), rows_per_message=100)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        bg = c.start(buffer_rows=10_000, max_rows=100)
        wait_for(lambda: bg.status.buffered_rows == 300, what="300 buffered rows")
        bg.stop()
        first = bg.drain(max_rows=100)
        assert first["i"].to_list() == list(range(100))
        # The rest were never taken: the next background reader starts with them...
        again = c.start(buffer_rows=10_000)
        assert again.status.unconsumed_rows == 200
        again.stop()
        # ...and poll_frame returns them before reading on.
        assert read_all(c, 200)["i"].to_list() == list(range(100, 300))


def test_drop_oldest_keeps_a_window_for_latest(bootstrap, new_topic):
    topic = new_topic(1)
    tk.Producer(bootstrap).send(topic, numbered(0, 2_000), rows_per_message=100)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest", output="pyarrow") as c:
        bg = c.start(buffer_rows=250, when_full="drop")
        wait_for(lambda: bg.status.rows == 2_000, what="every row")
        status = bg.status
        assert status.buffered_rows == 250 and status.dropped_rows == 1_750
        assert bg.latest(5).column("i").to_pylist() == list(range(1_995, 2_000))
        assert bg.drain().column("i").to_pylist() == list(range(1_750, 2_000))
        bg.stop()


def test_callback_with_a_window_buffer(bootstrap, new_topic):
    topic = new_topic(1)
    tk.Producer(bootstrap).send(topic, numbered(0, 1_000), rows_per_message=100)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        got = Collect()
        with c.start(got, buffer_rows=120) as bg:
            wait_for(lambda: got.rows == 1_000, what="every row")
            assert bg.latest(120)["i"].to_list() == list(range(880, 1_000))
            assert bg.status.unconsumed_rows == 0


def test_a_slow_callback_slows_reading_not_memory(bootstrap, new_topic):
    topic = new_topic(1)
    tk.Producer(bootstrap).send(topic, numbered(0, 20_000), rows_per_message=100)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        got = Collect(delay=0.2)
        bg = c.start(got, max_rows=100)
        time.sleep(1.0)
        bg.stop()
        # Each call took 0.2 s and got at most a max_rows frame (plus one message).
        assert 0 < got.rows <= 8 * 200
        assert bg.status.buffered_rows == 0


EXIT_SCRIPT = """
import sys, threading, time, polars as pl, tskafka as tk
broker = tk.LocalBroker()
tk.Admin(broker.bootstrap_servers).create_topic("t", partitions=2)
p = tk.Producer(broker.bootstrap_servers)
p.send("t", pl.DataFrame({"i": range(10_000), "j": range(10_000)}), rows_per_message=100)
c = tk.Consumer(broker.bootstrap_servers, topics=["t"], offset="earliest")
mode = sys.argv[1]
called = threading.Event()
pause = {"callback": 0.0, "slow-callback": 0.3, "stuck-callback": 60.0}.get(mode, 0.0)

def callback(frame):
    called.set()
    time.sleep(pause)

if mode == "buffer-full":
    bg = c.start(buffer_rows=100)
    while bg.status.buffered_rows == 0:
        time.sleep(0.01)
elif mode == "live-chart":
    from tskafka import live
    bg = c.start(live.LineChart("i", "j", last=10), max_rows=100)
    while bg.status.frames == 0:
        time.sleep(0.01)
else:
    bg = c.start(callback, max_rows=100)
    called.wait()
print("exiting", bg.status.state, flush=True)
"""


@pytest.mark.parametrize(
    "mode", ["callback", "slow-callback", "stuck-callback", "buffer-full", "live-chart"]
)
def test_interpreter_exits_with_a_running_background_consumer(mode):
    if mode == "live-chart":
        pytest.importorskip("plotly")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT), mode],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "exiting running" in done.stdout
    assert "Traceback" not in done.stderr and "panicked" not in done.stderr, done.stderr
    assert time.monotonic() - started < 30


def test_seek_drops_rows_read_ahead_and_polling_resumes_there(bootstrap, new_topic):
    topic = new_topic(1)
    tk.Producer(bootstrap).send(topic, numbered(0, 300), rows_per_message=100)
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        bg = c.start(buffer_rows=10_000, max_rows=100)
        wait_for(lambda: bg.status.buffered_rows == 300, what="300 buffered rows")
        with pytest.raises(tk.ConsumeError, match="background"):
            c.seek(0)
        bg.stop()
        with pytest.raises(tk.ConsumeError, match="drain"):
            c.seek(0, partition=0)
        c.seek(2)  # offsets count messages of 100 rows
        assert bg.status.buffered_rows == 0
        assert read_all(c, 100)["i"].to_list() == list(range(200, 300))
