"""Steps of the machine's wall clock, told by the monotonic clock: NTP correcting a clock
that drifted or started wrong, a machine or VM resumed after a suspend, a date set by hand.

The ward measures durations (feed timeouts, escalation, the quiet of an hour being
assembled) on the monotonic clock, which a step does not move, and stamps what it sends out
(``received_at``, an hour's ``closes_at``, HL7 and FHIR times) with the wall clock, which
is what a receiver needs. A step is therefore not undone, but it is logged, once, so that
times that jump in the event log have their explanation beside them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["CLOCK_STEP_S", "ClockSteps"]

logger = logging.getLogger("vitalgru.scoring.ward")

#: A change of the wall clock against the monotonic one, between two looks, taken as a
#: step (s). NTP slews an offset under 0.128 s and steps a larger one; both clocks follow
#: its slewing, so only steps (and a suspend, which the monotonic clock does not count)
#: move them apart.
CLOCK_STEP_S = 1.0


class ClockSteps:
    """Watches the wall clock against the monotonic one (``wall``: seconds since the epoch;
    ``mono``: a monotonic clock's seconds; both injectable for tests)."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        step_s: float = CLOCK_STEP_S,
    ) -> None:
        self._wall, self._mono, self.step_s = wall, mono, float(step_s)
        self._offset = self._wall() - self._mono()
        self.steps = 0  # steps seen since the start
        self.last_step_s: float | None = None  # the latest one (s, + forward, - back)

    def check(self) -> float | None:
        """The step (s, + forward, - back) the wall clock made since the last look, logged
        once as a warning; None when it made none."""
        offset = self._wall() - self._mono()
        step, self._offset = offset - self._offset, offset
        if abs(step) < self.step_s:
            return None
        self.steps += 1
        self.last_step_s = step
        logger.warning(
            "ward: the wall clock stepped %s by %.1f s (NTP correcting it, a machine resumed "
            "after a suspend, a date set by hand); times logged from now on are on the new "
            "clock, durations (feed timeouts, escalation) are not affected",
            "forward" if step > 0 else "back", abs(step),
        )  # fmt: skip
        return step
