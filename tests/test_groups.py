"""Consumer groups on the embedded broker as on Kafka: several consumers, each
in its own process, joining one group at once settle on a disjoint, complete
assignment within a few rounds; a member leaving and one joining while rows
are produced lose and repeat nothing (each row committed as it is handled)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

confluent = pytest.importorskip("confluent_kafka")

# One group member: prints its assignments, and each row it handled once its
# commit is stored; leaves the group (close) when its stop file appears.
MEMBER = r"""
import json, os, sys
from confluent_kafka import Consumer, KafkaException
bootstrap, topic, group, stop = sys.argv[1:5]
def say(**event):
    print(json.dumps(event), flush=True)
c = Consumer({
    "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
    "auto.offset.reset": "earliest", "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 300,
})
c.subscribe(
    [topic],
    on_assign=lambda c, ps: say(assigned=sorted(p.partition for p in ps)),
    on_revoke=lambda c, ps: say(revoked=True),
)
while not os.path.exists(stop):
    m = c.poll(0.1)
    if m is None or m.error():
        continue
    try:
        c.commit(message=m, asynchronous=False)
    except KafkaException:
        continue  # not ours any more: its next owner reads it from the last commit
    say(row=int(m.value()))
c.close()
say(closed=True)
"""


class Member:
    def __init__(self, script: Path, bootstrap: str, topic: str, group: str, tmp: Path):
        self.stop_file = tmp / f"stop-{uuid.uuid4().hex}"
        self.proc = subprocess.Popen(
            [sys.executable, str(script), bootstrap, topic, group, str(self.stop_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.assignments: list[list[int]] = []
        self.current: list[int] = []
        self.rows: list[int] = []
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            if "assigned" in event:
                self.assignments.append(event["assigned"])
                self.current = event["assigned"]
            elif "revoked" in event:
                self.current = []
            elif "row" in event:
                self.rows.append(event["row"])
            elif "closed" in event:
                self.closed = True

    def stop(self) -> None:
        self.stop_file.touch()

    def end(self) -> None:
        self.stop()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)


def _settled(members: list[Member], partitions: int) -> bool:
    """Every member holds partitions, none twice, all of them held."""
    held = [p for m in members for p in m.current]
    everyone = all(m.current for m in members)
    return everyone and len(held) == partitions and set(held) == set(range(partitions))


def _wait_settled(members: list[Member], partitions: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _settled(members, partitions):
            time.sleep(1.0)  # still so a moment later: no round under way
            if _settled(members, partitions):
                return
        time.sleep(0.1)
    raise AssertionError(f"no stable assignment: {[m.assignments for m in members]}")


@pytest.fixture
def member_script(tmp_path: Path) -> Path:
    script = tmp_path / "member.py"
    script.write_text(MEMBER)
    return script


@pytest.mark.parametrize("count", [4, 8])
def test_consumers_joining_at_once_settle_in_a_few_rounds(
    bootstrap, new_topic, member_script, tmp_path, count
):
    partitions = 2 * count
    topic, group = new_topic(partitions), f"settle-{uuid.uuid4().hex[:8]}"
    members = [Member(member_script, bootstrap, topic, group, tmp_path) for _ in range(count)]
    try:
        _wait_settled(members, partitions, timeout=40)
        rounds = max(len(m.assignments) for m in members)
        assert rounds <= 3, [m.assignments for m in members]
        assert all(len(m.current) == 2 for m in members), [m.assignments for m in members]
    finally:
        for m in members:
            m.stop()
        for m in members:
            m.end()


def test_rows_are_neither_lost_nor_repeated_as_members_leave_and_join(
    bootstrap, new_topic, member_script, tmp_path
):
    partitions, rows = 8, 600
    topic, group = new_topic(partitions), f"churn-{uuid.uuid4().hex[:8]}"
    members = [Member(member_script, bootstrap, topic, group, tmp_path) for _ in range(4)]
    everyone = list(members)
    try:
        _wait_settled(members, partitions, timeout=40)
        producer = confluent.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        for i in range(rows):
            producer.produce(topic, str(i).encode(), partition=i % partitions)
            if i == rows // 3:
                producer.flush(10)
                members[0].end()  # leaves while rows flow
                assert members[0].closed
            if i == 2 * rows // 3:
                producer.flush(10)
                joined = Member(member_script, bootstrap, topic, group, tmp_path)
                everyone.append(joined)
                members = [*members[1:], joined]
            time.sleep(0.01)
        assert producer.flush(10) == 0
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if sum(len(m.rows) for m in everyone) >= rows and _settled(members, partitions):
                break
            time.sleep(0.2)
        time.sleep(1.0)  # any repeat would arrive now
        handled = sorted(r for m in everyone for r in m.rows)
        assert handled == list(range(rows)), (
            f"{len(handled)} rows handled, {len(set(handled))} distinct"
        )
        assert len(everyone[-1].assignments) >= 1
    finally:
        for m in everyone:
            m.stop()
        for m in everyone:
            m.end()
