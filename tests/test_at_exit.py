"""What runs is stopped at interpreter exit, and nothing is kept alive for
that: a replay nobody holds goes on to its end, then is freed."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import time
import weakref

import polars as pl
from helpers import read_all

import tskafka as tk


def test_a_finished_replay_that_is_dropped_is_freed(bootstrap, new_topic):
    topic = new_topic(1)
    r = tk.replay(pl.DataFrame({"i": range(10)}), topic, bootstrap, speed=None)
    deadline = time.monotonic() + 20
    while not r.progress.done:
        assert time.monotonic() < deadline, r.progress
        time.sleep(0.01)
    # Neither wait() nor stop() was called: nothing told tskafka it is over.
    freed = weakref.ref(r)
    del r
    gc.collect()
    assert freed() is None


def test_a_running_replay_that_is_dropped_goes_on_to_its_end(bootstrap, new_topic):
    topic = new_topic(1)
    r = tk.replay(pl.DataFrame({"i": range(20)}), topic, bootstrap, every=0.05)
    assert r.progress.rows_sent < 20
    freed = weakref.ref(r)
    del r  # nothing holds the handle: the replay is not cut short
    gc.collect()
    assert freed() is None
    with tk.Consumer(bootstrap, topics=[topic], offset="earliest") as c:
        assert read_all(c, 20)["i"].to_list() == list(range(20))


EXIT_SCRIPT = """
import sys, threading, time
import polars as pl
import tskafka as tk
from tskafka import datasets

broker = tk.LocalBroker()
tk.Admin(broker.bootstrap_servers).create_topic("replayed")
tk.Admin(broker.bootstrap_servers).create_topic("read")
tk.Producer(broker.bootstrap_servers).send("read", pl.DataFrame({"i": range(1_000)}), rows_per_message=10)

# A replay with hours of schedule left, waited on by a non-daemon thread:
# the interpreter joins that thread before atexit runs, so only a stop made
# before the join lets the process end.
replay = tk.replay(datasets.sensors(rows=1_000, period=60.0), "replayed", broker.bootstrap_servers,
                   time_column="timestamp", speed=1)
# Another, whose handle is dropped at once: it runs on, and is stopped at exit too.
tk.replay(datasets.sensors(rows=1_000, period=60.0), "replayed", broker.bootstrap_servers,
          time_column="timestamp", speed=1)
def wait_for_the_replay():
    print("replay ended:", replay.wait().state, flush=True)
threading.Thread(target=wait_for_the_replay).start()

reader = tk.Consumer(broker.bootstrap_servers, topics=["read"], offset="earliest")
background = reader.start(lambda frame: time.sleep(0.05), max_rows=10)
idle = tk.Consumer(broker.bootstrap_servers, topics=["replayed"], offset="earliest")
idle.poll_frame(timeout=0.1)

while replay.progress.rows_sent < 1 or background.status.frames < 1:
    time.sleep(0.01)
print("exiting", replay.progress.state, background.status.state, idle.closed, flush=True)
"""


def test_interpreter_exits_promptly_with_a_replay_a_background_reader_and_a_consumer_running():
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_SCRIPT)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exiting running running False" in done.stdout, done.stdout + done.stderr
    assert "replay ended: stopped" in done.stdout, done.stdout + done.stderr
    for crash in ("Traceback", "panicked", "Fatal Python error"):
        assert crash not in done.stderr, done.stderr
    assert took < 30, took
