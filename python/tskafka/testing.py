"""Test utilities: librdkafka's mock cluster for fault injection.

    with MockCluster(brokers=3) as cluster:
        cluster.create_topic("t", partitions=6, replication_factor=3)
        producer = tskafka.Producer(cluster.bootstrap_servers)
        cluster.broker_down(1)                 # ... and broker_up(1)
        cluster.request_errors("Produce", ["NotLeaderForPartition", "RequestTimedOut"])
        cluster.round_trip_time(2, 0.5)

The mock cluster keeps only the last 5 MiB of each partition and silently
drops older data: spread test data over partitions and keep it small.
"""

from __future__ import annotations

from . import _tskafka
from ._client import _Client


class MockCluster(_Client):
    def __init__(self, brokers: int = 3) -> None:
        self._native = _tskafka.MockCluster(brokers)

    @property
    def bootstrap_servers(self) -> str:
        return str(self._native.bootstrap_servers)

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1) -> None:
        self._native.create_topic(name, partitions, replication_factor)

    def broker_down(self, broker_id: int) -> None:
        """Take broker ``broker_id`` (1-based) down: connections close, new ones are refused."""
        self._native.broker_down(broker_id)

    def broker_up(self, broker_id: int) -> None:
        self._native.broker_up(broker_id)

    def round_trip_time(self, broker_id: int, seconds: float) -> None:
        """Delay every answer of ``broker_id`` by ``seconds``."""
        self._native.round_trip_time(broker_id, seconds)

    def request_errors(self, request: str, errors: list[str]) -> None:
        """Answer the next ``request`` requests (e.g. 'Produce') with ``errors`` in turn."""
        self._native.request_errors(request, list(errors))

    def clear_request_errors(self, request: str) -> None:
        self._native.clear_request_errors(request)

    def partition_leader(self, topic: str, partition: int, broker_id: int) -> None:
        self._native.partition_leader(topic, partition, broker_id)
