"""``tskafka.Admin``: topics created, deleted, listed and described."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _tskafka
from ._config import Config, ConfigLike, native


class Admin:
    """Creates, deletes, lists and describes topics. ``config`` as for
    :class:`Producer` (a config.ini's ``[admin]`` section applies)."""

    def __init__(self, bootstrap_servers: str | None = None, config: ConfigLike = None) -> None:
        self._native = _tskafka.Admin(bootstrap_servers, native(config, "admin"))

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, Any] | None = None,
        *,
        exist_ok: bool = False,
        timeout: float = 30.0,
    ) -> None:
        """Create ``name``; with ``exist_ok`` an existing topic is not an error.
        ``config`` holds topic properties (``retention.ms``, ...)."""
        topic_config = None if config is None else Config(config).to_dict()
        self._native.create_topic(
            name, partitions, replication_factor, topic_config, exist_ok=exist_ok, timeout=timeout
        )

    def delete_topic(self, name: str, *, missing_ok: bool = False, timeout: float = 30.0) -> None:
        self._native.delete_topic(name, missing_ok=missing_ok, timeout=timeout)

    def list_topics(self, timeout: float = 10.0) -> list[str]:
        return self._native.list_topics(timeout)

    def describe_topic(self, name: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Partitions with leader, replicas and low/high watermarks."""
        return self._native.describe_topic(name, timeout)

    def __repr__(self) -> str:
        return repr(self._native)
