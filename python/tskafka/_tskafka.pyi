import os
from collections.abc import Callable
from typing import Any, final

import pyarrow as pa

__all__ = [
    "Admin",
    "ArrowStream",
    "Background",
    "Consumer",
    "CsvFile",
    "LocalBroker",
    "MockCluster",
    "Producer",
    "Replay",
    "ScanRun",
    "SendReport",
    "TopicScan",
    "__version__",
    "is_secret",
    "is_sensitive",
    "librdkafka_version",
    "read_ini_sections",
    "scrub",
    "shown_value",
    "stop_replays",
]
__version__: str
librdkafka_version: str

def read_ini_sections(text: str) -> dict[str, dict[str, str]]: ...
def is_secret(key: str) -> bool: ...
def scrub(text: str, config: dict[str, str]) -> str: ...
def stop_replays(timeout: float) -> int: ...
def is_sensitive(key: str) -> bool: ...
def shown_value(key: str, value: str) -> str: ...

@final
class LocalBroker:
    def __new__(
        cls,
        port: int | None = None,
        storage: str | os.PathLike[str] | None = None,
        *,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        users: dict[str, str] | None = None,
        auto_create_topics: bool = True,
        schema_registry: bool = False,
        schema_registry_port: int | None = None,
        schema_registry_client_cafile: str | os.PathLike[str] | None = None,
    ) -> LocalBroker: ...
    @property
    def bootstrap_servers(self) -> str: ...
    @property
    def schema_registry_url(self) -> str: ...
    def schema_registry_config(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_location: str | os.PathLike[str] | None = None,
    ) -> dict[str, str]: ...
    @property
    def port(self) -> int: ...
    @property
    def security_protocol(self) -> str: ...
    def client_config(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_location: str | os.PathLike[str] | None = None,
    ) -> dict[str, str]: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def __enter__(self) -> LocalBroker: ...
    def __exit__(self, _exc_type: object, _exc: object, _tb: object) -> None: ...

@final
class Admin:
    def __new__(
        cls, bootstrap_servers: str | None = None, config: dict[str, Any] | None = None
    ) -> Admin: ...
    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: dict[str, str] | None = None,
        *,
        exist_ok: bool = False,
        timeout: float = 30.0,
    ) -> None: ...
    def delete_topic(
        self, name: str, *, missing_ok: bool = False, timeout: float = 30.0
    ) -> None: ...
    def list_topics(self, timeout: float = 10.0) -> list[str]: ...
    def describe_topic(self, name: str, timeout: float = 10.0) -> list[dict[str, Any]]: ...

@final
class SendReport:
    @property
    def topic(self) -> str: ...
    @property
    def rows(self) -> int: ...
    @property
    def messages(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def rows_pending(self) -> int: ...
    @property
    def seconds(self) -> float: ...
    @property
    def rows_per_second(self) -> float: ...

@final
class Producer:
    def __new__(
        cls, bootstrap_servers: str | None = None, config: dict[str, Any] | None = None
    ) -> Producer: ...
    def send(
        self,
        topic: str,
        data: Any,
        *,
        key: str | list[str] | None = None,
        timestamp: str | None = None,
        partition: int | None = None,
        headers: dict[str, bytes] | None = None,
        format: str = "arrow",
        rows_per_message: int | None = None,
        schema_header: bool = False,
        wait: bool = True,
        timeout: float | None = None,
        value: str | None = None,
        subject: str | None = None,
        schema: str | None = None,
        json_orient: str | None = None,
    ) -> SendReport: ...
    def flush(self, timeout: float | None = None) -> SendReport: ...
    @property
    def in_flight(self) -> int: ...
    def close(self, timeout: float = 30.0) -> None: ...
    @property
    def closed(self) -> bool: ...

@final
class Consumer:
    def __new__(
        cls,
        bootstrap_servers: str | None = None,
        config: dict[str, Any] | None = None,
        *,
        group_id: str | None = None,
        offset: str | None = None,
        auto_commit: bool | None = None,
        format: str = "auto",
        metadata: bool = False,
        on_error: str = "raise",
        json_schema: Any = None,
        timeout: float = 10.0,
        errors: str = "strict",
        columns: list[str] | None = None,
        header: bool = False,
        schema: dict[str, str] | None = None,
        delimiter: str = ",",
        encoding: str = "utf-8",
        key_format: str | None = None,
        json_orient: str | None = None,
    ) -> Consumer: ...
    def subscribe(self, topics: list[str]) -> None: ...
    def assign(self, partitions: list[tuple[str, int, int | None]]) -> None: ...
    def poll_frame(
        self, max_rows: int = 100000, timeout: float | None = 1.0, string_views: bool = False
    ) -> ArrowStream | None: ...
    def commit(self, asynchronous: bool = False) -> None: ...
    def committed(self, timeout: float = 10.0) -> dict[tuple[str, int], int]: ...
    def assignment(self) -> list[tuple[str, int]]: ...
    def seek(
        self,
        *,
        offset: int | str | None = None,
        timestamp_ms: int | None = None,
        topic: str | None = None,
        partition: int | None = None,
        timeout: float = 10.0,
    ) -> list[tuple[str, int, int]]: ...
    @property
    def bad_messages(self) -> list[tuple[str, int, int, str, bytes]]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...

@final
class CsvFile:
    def __new__(
        cls,
        path: str,
        *,
        time_column: str | None = None,
        time_format: str | None = None,
        encoding: str = "auto",
        dtypes: dict[str, str] | None = None,
        on_bad_rows: str = "error",
        chunk_rows: int = 65536,
        delimiter: str | None = None,
    ) -> CsvFile: ...
    @property
    def schema(self) -> pa.Schema: ...
    def __iter__(self) -> CsvFile: ...
    def __next__(self) -> pa.RecordBatch: ...
    @property
    def bad_rows(self) -> list[tuple[int, str]]: ...
    @property
    def rows_skipped(self) -> int: ...
    @property
    def rows_read(self) -> int: ...

@final
class Replay:
    def __new__(
        cls,
        topic: str,
        source: Any,
        bootstrap_servers: str | None = None,
        config: dict[str, Any] | None = None,
        *,
        time_column: str | None = None,
        speed: float | None = ...,
        every: float | None = None,
        window: float = 0.0,
        rows_per_message: int | None = None,
        key: str | list[str] | None = None,
        timestamp: str = "auto",
        format: str = "arrow",
        schema_header: bool = False,
        headers: dict[str, bytes] | None = None,
        encoding: str = "auto",
        time_format: str | None = None,
        dtypes: dict[str, str] | None = None,
        on_bad_rows: str = "error",
        chunk_rows: int = 65536,
        delimiter: str | None = None,
        timeout: float = 30.0,
        subject: str | None = None,
        schema: str | None = None,
    ) -> Replay: ...
    @property
    def kafka_timestamps(self) -> str: ...
    @property
    def time_zone(self) -> str | None: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def topic(self) -> str: ...
    @property
    def bad_rows(self) -> list[tuple[int, str]]: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def request_stop(self, timeout: float = 10.0) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def check(self) -> None: ...
    def progress(self) -> dict[str, Any]: ...

@final
class MockCluster:
    def __new__(cls, brokers: int = 3) -> MockCluster: ...
    @property
    def bootstrap_servers(self) -> str: ...
    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1) -> None: ...
    def broker_down(self, id: int) -> None: ...
    def broker_up(self, id: int) -> None: ...
    def round_trip_time(self, id: int, seconds: float) -> None: ...
    def request_errors(self, request: str, errors: list[str]) -> None: ...
    def clear_request_errors(self, request: str) -> None: ...
    def partition_leader(self, topic: str, partition: int, id: int) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...

@final
class Background:
    def __new__(
        cls,
        consumer: Consumer,
        callback: Callable[[ArrowStream], object] | None = None,
        *,
        max_rows: int = 100000,
        buffer_rows: int = 0,
        drop_oldest: bool = False,
        previous: Background | None = None,
    ) -> Background: ...
    def stop(self, timeout: float | None = None, raise_error: bool = True) -> bool: ...
    def join(self, timeout: float | None = None) -> bool: ...
    @property
    def status(self) -> dict[str, Any]: ...
    @property
    def running(self) -> bool: ...
    def latest(self, n: int) -> ArrowStream | None: ...
    def drain(self, max_rows: int | None = None) -> ArrowStream | None: ...
    def clear(self) -> int: ...

@final
class ArrowStream:
    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...
    @property
    def num_rows(self) -> int: ...

@final
class TopicScan:
    def __new__(
        cls,
        topic: str,
        bootstrap_servers: str | None = None,
        config: dict[str, str] | None = None,
        *,
        format: str = "auto",
        partitions: list[int] | None = None,
        start_offset: int | None = None,
        end_offset: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        row_times: bool = False,
        json_schema: Any = None,
        on_error: str = "raise",
        headers: bool = False,
        timeout: float = 10.0,
        csv_columns: list[str] | None = None,
        header: bool = False,
        csv_schema: dict[str, str] | None = None,
        delimiter: str = ",",
        encoding: str = "utf-8",
        errors: str = "strict",
        json_orient: str | None = None,
        key_format: str | None = None,
    ) -> TopicScan: ...
    @property
    def ranges(self) -> list[tuple[int, int, int, int, int]]: ...
    @property
    def topic(self) -> str: ...
    def run(
        self,
        *,
        limit: int | None = None,
        columns: list[str] | None = None,
        batch_rows: int = 100_000,
        string_views: bool = False,
        partitions: list[int] | None = None,
        whole: bool = False,
    ) -> ScanRun: ...

@final
class ScanRun:
    def next_frame(self) -> ArrowStream | None: ...
    def read_all(self) -> list[ArrowStream]: ...
    def close(self) -> None: ...
    @property
    def stats(self) -> dict[str, Any]: ...
