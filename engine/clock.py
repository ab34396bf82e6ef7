"""The injected clock: the one place the engine learns what time it is.

Every command runs Spiff and the expression sandbox inside :func:`running_at` with the ``now`` its
caller passed in (the CLI reads the wall clock or ``--now``; tests pass fixed times). Inside, both
SpiffWorkflow's timer code and qproc expressions read that moment; outside, asking for the time
raises, so a forgotten ``running_at`` shows up as an error instead of a silent wall-clock read.

SpiffWorkflow's timer event definitions call ``datetime.now(timezone.utc)`` on the ``datetime``
name of their own module. :func:`install` rebinds that name to :class:`_SpiffClock`, a ``datetime``
subclass whose ``now()`` answers from here, and fixes the zone Spiff gives to timer dates written
without one (it would take the machine's local zone) to UTC. Nothing else in Spiff changes.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer


class ClockNotSet(RuntimeError):
    """Something asked for the time outside a command: a bug, since the engine never reads the wall clock."""


@dataclass(frozen=True)
class _Moment:
    now: datetime
    calendar: Callable[[], Any] | None


_CURRENT: ContextVar[_Moment | None] = ContextVar("qproc_clock", default=None)


@contextmanager
def running_at(now: datetime, calendar: Callable[[], Any] | None = None) -> Iterator[None]:
    """Within this block it is ``now`` (aware) for Spiff and expressions; ``calendar()`` gives the business calendar."""
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: the engine works in aware times")
    token = _CURRENT.set(_Moment(now.astimezone(timezone.utc), calendar))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def is_set() -> bool:
    """Whether a command's clock is running in this context."""
    return _CURRENT.get() is not None


def now() -> datetime:
    """The current command's time (aware UTC); ClockNotSet outside :func:`running_at`."""
    moment = _CURRENT.get()
    if moment is None:
        raise ClockNotSet("the engine asked for the time outside a command; pass 'now' in")
    return moment.now


def calendar() -> Any:
    """The business calendar of the current command (loaded on first use); ClockNotSet outside a command."""
    moment = _CURRENT.get()
    if moment is None:
        raise ClockNotSet("the engine asked for the business calendar outside a command")
    if moment.calendar is None:
        raise ClockNotSet("this command runs without a business calendar")
    return moment.calendar()


class _SpiffClock(datetime):
    """``datetime`` as SpiffWorkflow's timer module sees it: ``now()`` is the injected clock."""

    @classmethod
    def now(cls, tz=None):
        """The command's time, in ``tz`` (UTC when none is given)."""
        moment = now().astimezone(tz or timezone.utc)
        return cls.combine(moment.date(), moment.timetz())


def install() -> None:
    """Make SpiffWorkflow's timers read the injected clock, and read zone-less timer dates as UTC."""
    spiff_timer.datetime = _SpiffClock
    spiff_timer.LOCALTZ = timezone.utc


install()
