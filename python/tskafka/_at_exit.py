"""What must stop when the interpreter exits, stopped by one hook.

Objects register weakly (one freed before exit is simply gone) and are
stopped stage by stage: live charts first (they draw what background
readers hand them), then background readers, replays, and consumers last
(closed while any LocalBroker of the process still serves them: left to
finalization, a consumer may outlive the broker and wait out its group
session trying to leave).
"""

from __future__ import annotations

import atexit
import threading
import weakref
from enum import IntEnum
from typing import Protocol


class Stage(IntEnum):
    """The order things stop in at exit."""

    LIVE_CHART = 0
    BACKGROUND_READER = 1
    REPLAY = 2
    CONSUMER = 3


class Stoppable(Protocol):
    def _stop_at_exit(self) -> None:
        """Stop without raising what went wrong: nobody is left to report to."""


_registered: dict[Stage, weakref.WeakSet[Stoppable]] = {stage: weakref.WeakSet() for stage in Stage}


def stop_at_exit(thing: Stoppable, stage: Stage) -> None:
    """Stop ``thing`` at interpreter exit, if it is still alive then."""
    _registered[stage].add(thing)


def forget(thing: Stoppable, stage: Stage) -> None:
    """``thing`` has stopped: nothing to do for it at exit."""
    _registered[stage].discard(thing)


def _stop_all() -> None:
    for stage in Stage:
        for thing in list(_registered[stage]):
            try:
                thing._stop_at_exit()
            except BaseException:  # noqa: BLE001, S110 - exiting: nothing to report to
                pass


# threading's exit hooks run before the interpreter joins non-daemon threads
# (atexit runs after): a user's thread blocked in Replay.wait(),
# BackgroundConsumer.join() or poll_frame() is released instead of holding
# the exit forever.
_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_stop_all)
else:  # pragma: no cover - another Python implementation
    atexit.register(_stop_all)
