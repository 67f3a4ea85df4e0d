"""Tests talk Kafka over a socket: to an embedded LocalBroker by default, or
to the cluster named by TSKAFKA_BOOTSTRAP (e.g. a real Kafka on localhost)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

import tskafka as tk


@pytest.fixture(scope="session")
def bootstrap() -> Iterator[str]:
    external = os.environ.get("TSKAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    with tk.LocalBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def strict_bootstrap() -> Iterator[str]:
    """A broker that does not auto-create topics (Kafka's
    auto.create.topics.enable=false), for what a missing topic does."""
    if os.environ.get("TSKAFKA_BOOTSTRAP"):
        pytest.skip("needs a broker without auto-created topics")
    with tk.LocalBroker(auto_create_topics=False) as broker:
        yield broker.bootstrap_servers


@pytest.fixture(scope="session")
def admin(bootstrap: str) -> tk.Admin:
    return tk.Admin(bootstrap)


@pytest.fixture
def new_topic(admin: tk.Admin):
    """Makes a topic with a random name: ``new_topic(partitions=3)``."""
    made: list[str] = []

    def make(partitions: int = 1) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        admin.create_topic(name, partitions=partitions)
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            admin.delete_topic(name, missing_ok=True)
        except tk.TsKafkaError:
            pass


@pytest.fixture
def topic(new_topic) -> str:
    return new_topic(3)


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl+C as an interactive session has it. A job that a non-interactive
    shell starts in the background inherits SIGINT ignored, and so would the
    processes the tests start; the tests that interrupt a wait, in this
    process or in a child, need SIGINT to raise KeyboardInterrupt."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="module")
def broker_process() -> Iterator[str]:
    """`tskafka broker` in a process of its own, as the tutorials run Kafka."""
    from helpers import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tskafka", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line, (line, proc.stderr.read() if proc.poll() else "")
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        finally:
            proc.kill()
