"""A SIGHUP (reload) that arrives while a process is starting: kept, never fatal.

SIGHUP's default action ends a process. Until a serving process's loop takes the signal
over (server.py, workers.py's supervisor), a reload asked of it — `kill -HUP` of the
supervisor, forwarded to every worker while one is still importing or loading its
policies — would end it: the supervisor restarts it a second later, and it serves again
only after its whole start-up. `defer` keeps the request instead; `handle` gives the
signal to the loop and reloads once if one came meanwhile: what was loaded before the
request may predate the change the request was about.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import FrameType

_asked = False


def _remember(_signum: int, _frame: FrameType | None) -> None:
    global _asked
    _asked = True


def defer() -> None:
    """From now until the loop handles SIGHUP, a SIGHUP is remembered, not fatal. One
    remembered already stays (a worker defers twice: as it is forked, and as its command
    starts); a forked child inherits none, as its parent forks only once it handles the
    signal in its loop."""
    signal.signal(signal.SIGHUP, _remember)


def handle(loop: asyncio.AbstractEventLoop, reload: Callable[[], None]) -> None:
    """SIGHUP runs `reload` in `loop` from now on; once now if one came since `defer`."""
    global _asked
    loop.add_signal_handler(signal.SIGHUP, reload)
    asked, _asked = _asked, False
    if asked:
        reload()
