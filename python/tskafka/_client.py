"""What the native-backed clients share."""

from __future__ import annotations

from typing import Any, Self


class _Client:
    """A native client, closed once; ``with`` closes it."""

    _native: Any

    @property
    def closed(self) -> bool:
        return bool(self._native.closed)

    def close(self) -> None:
        self._native.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._native)
